"""DICOMweb credentials: taken from arguments, the URL, the environment or netrc; never printed."""

from __future__ import annotations

import traceback

import pytest

from SaliencyTrustLib.cli import main
from SaliencyTrustLib.io.dicomweb import (ENV_PASSWORD, ENV_TOKEN, ENV_USER, DicomWebError, DicomWebStore,
                                          mask_url)
from support.orthanc_auth import AuthOrthancServer, BearerStub

USER, PASSWORD = "ann", "s3cret-Pw_1"


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch, tmp_path):
    """Neither the developer's environment nor ~/.netrc may decide these tests."""
    for name in (ENV_USER, ENV_PASSWORD, ENV_TOKEN):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture(scope="module")
def auth_orthanc(tmp_path_factory):
    server = AuthOrthancServer(USER, PASSWORD, workdir=tmp_path_factory.mktemp("orthanc-auth"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _full_text(error: BaseException) -> str:
    """Everything a traceback of ``error`` would print, chained causes included."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


@pytest.mark.parametrize("url, shown", [
    ("https://ann:s3cret@pacs.example/dicom-web", "https://ann:***@pacs.example/dicom-web"),
    ("http://tok3n@pacs.example:8042/dicom-web", "http://***@pacs.example:8042/dicom-web"),
    ("https://pacs.example/rs?access_token=abc&limit=5", "https://pacs.example/rs?access_token=***&limit=5"),
    ("http://127.0.0.1:8042/dicom-web", "http://127.0.0.1:8042/dicom-web"),
    ("http://ann:p%40ss@[::1]:8042/dicom-web", "http://ann:***@[::1]:8042/dicom-web"),
])
def test_mask_url_hides_passwords_and_token_parameters(url, shown):
    assert mask_url(url) == shown


def test_credentials_in_the_url_never_appear_in_errors_repr_or_cli_output(capsys):
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:9/dicom-web?api_key=k3y-value"
    store = DicomWebStore(url, trust_env=False, timeout=5, retries=1)
    assert PASSWORD not in repr(store) and PASSWORD not in store.url and store.auth == "basic (url)"
    assert "k3y-value" not in repr(store)
    with pytest.raises(DicomWebError, match=r"ann:\*\*\*@127\.0\.0\.1:9/dicom-web\?api_key=\*\*\*: cannot connect") as error:
        store.list_studies()
    assert PASSWORD not in _full_text(error.value) and "k3y-value" not in _full_text(error.value)
    with pytest.raises(ValueError) as bad_url:
        DicomWebStore(f"ftp://{USER}:{PASSWORD}@host/dicom-web")
    assert PASSWORD not in str(bad_url.value) and "***" in str(bad_url.value)
    assert main(["pacs", "--url", url, "--no-env-proxy", "--retries", "1", "list"]) == 1
    printed = capsys.readouterr()
    assert "cannot connect" in printed.err and PASSWORD not in printed.err + printed.out


@pytest.mark.pacs
@pytest.mark.parametrize("how", ["url", "argument", "environment", "netrc"])
def test_basic_authentication_from_each_source_reaches_the_server(auth_orthanc, monkeypatch, tmp_path, how):
    url, kwargs = auth_orthanc.dicomweb_url, {}
    if how == "url":
        url = url.replace("http://", f"http://{USER}:{PASSWORD}@")
    elif how == "argument":
        kwargs = {"username": USER, "password": PASSWORD}
    elif how == "environment":
        monkeypatch.setenv(ENV_USER, USER)
        monkeypatch.setenv(ENV_PASSWORD, PASSWORD)
    else:
        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
        netrc.chmod(0o600)
        kwargs = {"netrc_file": netrc}
    store = DicomWebStore(url, trust_env=False, retries=1, **kwargs)
    assert store.list_studies() == [] and store.auth == f"basic ({how})"
    assert PASSWORD not in repr(store)


@pytest.mark.pacs
def test_missing_or_wrong_credentials_give_401_with_the_ways_to_pass_them(auth_orthanc, capsys):
    with pytest.raises(DicomWebError, match=f"HTTP 401.*{ENV_USER}.*{ENV_TOKEN}.*netrc"):
        DicomWebStore(auth_orthanc.dicomweb_url, trust_env=False, retries=1).list_studies()
    wrong = "not-the-Pw_9"
    with pytest.raises(DicomWebError, match="HTTP 401") as error:
        DicomWebStore(auth_orthanc.dicomweb_url, trust_env=False, retries=1, username=USER,
                      password=wrong).list_studies()
    assert wrong not in _full_text(error.value)
    assert main(["pacs", "--url", auth_orthanc.dicomweb_url, "--no-env-proxy", "--retries", "1",
                 "--user", USER, "--password", wrong, "list"]) == 1
    printed = capsys.readouterr()
    assert "HTTP 401" in printed.err and wrong not in printed.err + printed.out
    assert main(["pacs", "--url", auth_orthanc.dicomweb_url, "--no-env-proxy", "--user", USER,
                 "--password", PASSWORD, "list"]) == 0


def test_bearer_token_from_argument_or_environment_is_sent_and_never_shown(monkeypatch):
    token = "eyJ-secret-token.value"
    with BearerStub(token) as stub:
        store = DicomWebStore(stub.url, trust_env=False, retries=1, token=token)
        assert store.list_studies() == [] and store.auth == "bearer (argument)"
        monkeypatch.setenv(ENV_TOKEN, token)
        from_env = DicomWebStore(stub.url, trust_env=False, retries=1)
        assert from_env.list_studies() == [] and from_env.auth == "bearer (environment)"
        assert stub.authorizations == [f"Bearer {token}"] * 2
        assert token not in repr(store) + repr(from_env)
        with pytest.raises(DicomWebError, match="HTTP 401") as error:
            DicomWebStore(stub.url, trust_env=False, retries=1, token="wrong-" + token).list_studies()
        assert token not in _full_text(error.value)


def test_a_password_without_a_user_name_is_refused():
    with pytest.raises(ValueError, match="password was given without a user name"):
        DicomWebStore("http://127.0.0.1:9/dicom-web", password=PASSWORD)


def test_a_broken_netrc_is_named_when_given_and_ignored_when_it_is_the_default(tmp_path, monkeypatch):
    from SaliencyTrustLib.io import InputError

    broken = tmp_path / "netrc"
    broken.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD} bogus\n")
    broken.chmod(0o600)
    with pytest.raises(InputError, match="is not a readable netrc file") as error:
        DicomWebStore("http://127.0.0.1:9/dicom-web", netrc_file=broken)
    assert PASSWORD not in _full_text(error.value)
    with pytest.raises(InputError, match="does not exist"):
        DicomWebStore("http://127.0.0.1:9/dicom-web", netrc_file=tmp_path / "missing")
    monkeypatch.setenv("NETRC", str(broken))     # the default file: other tools' business
    assert DicomWebStore("http://127.0.0.1:9/dicom-web").auth is None

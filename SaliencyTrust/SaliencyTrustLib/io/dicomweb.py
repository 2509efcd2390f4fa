"""A DICOMweb PACS as a source of studies and a place to store results (dicomweb-client).

:class:`DicomWebStore` wraps :class:`dicomweb_client.api.DICOMwebClient` with what a trust run
needs: list studies / series / instances (QIDO-RS) as plain dicts, pull a study or series as
pydicom datasets or into a local folder (WADO-RS), and store instances (STOW-RS), with errors
that name the server and the fix. ``url`` is the DICOMweb root, e.g. Orthanc's
``http://127.0.0.1:8042/dicom-web``, dcm4chee's ``http://host:8080/dcm4chee-arc/aets/DCM4CHEE/rs``.

It is also the ``saliency-trust pacs`` command (``list``, ``pull``, ``push``); see :func:`run`.

Safety (docs/robust-input.md):

* **Credentials never leave the request.** The URL the user gives may hold ``user:password@``;
  they are taken out of it and sent as HTTP basic authentication, and every message, ``repr`` and
  :attr:`DicomWebStore.url` show the URL through :func:`mask_url` (password as ``***``).
  Credentials come from, first found: the ``token`` / ``username`` + ``password`` arguments (CLI
  ``--token``, ``--user``, ``--password``), the URL, the environment variables
  :data:`ENV_TOKEN` (bearer token) or :data:`ENV_USER` + :data:`ENV_PASSWORD` (basic), or a netrc
  file (``netrc_file``, else ``$NETRC``, else ``~/.netrc``) entry for the server's host.
* **Nothing the server returns escapes the output folder.** Every UID used in a path (requested
  or returned) must be a DICOM UID (:func:`~SaliencyTrustLib.io.safe_paths.validate_uid`), and
  every file is placed with :func:`~SaliencyTrustLib.io.safe_paths.child_path`; a study with one
  bad value is refused whole (one :class:`DicomWebError`, nothing of it written).
"""

from __future__ import annotations

import argparse
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import InputError
from .safe_paths import child_path, validate_uid

__all__ = ["DicomWebStore", "DicomWebError", "mask_url", "add_arguments", "run"]

#: Environment variables read for credentials when no argument or URL gives them.
ENV_USER = "SALIENCY_TRUST_DICOMWEB_USER"
ENV_PASSWORD = "SALIENCY_TRUST_DICOMWEB_PASSWORD"
ENV_TOKEN = "SALIENCY_TRUST_DICOMWEB_TOKEN"
#: Query parameters whose values are masked by :func:`mask_url` (matched case-insensitively).
_SECRET_QUERY_KEYS = re.compile(r"token|key|pass|secret|sig|auth|credential", re.IGNORECASE)

#: QIDO-RS attributes returned by :meth:`DicomWebStore.list_studies` (DICOM keywords).
STUDY_FIELDS = ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "StudyTime",
                "StudyDescription", "AccessionNumber", "ModalitiesInStudy",
                "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
#: QIDO-RS attributes returned by :meth:`DicomWebStore.list_series`.
SERIES_FIELDS = ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber",
                 "SeriesDescription", "NumberOfSeriesRelatedInstances")
#: QIDO-RS attributes returned by :meth:`DicomWebStore.list_instances`.
INSTANCE_FIELDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
                   "InstanceNumber")



class DicomWebError(RuntimeError):
    """A DICOMweb request failed or the server returned unusable data; the message names the
    server (password masked), the request and a fix."""


def mask_url(url: Any) -> str:
    """``url`` safe to print: the password of ``user:password@`` as ``***`` (a user name alone,
    which may be a token, as ``***``), and the values of query parameters named like a secret
    (token, key, password, secret, signature, auth...) as ``***``.

    ``mask_url("https://ann:s3cret@pacs/dicom-web?access_token=abc")`` ->
    ``"https://ann:***@pacs/dicom-web?access_token=***"``. Text that is not a URL is returned as
    ``str(url)`` with anything before an ``@`` in its first ``//`` part masked the same way.
    """
    text = str(url)
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:   # e.g. an unbalanced "[" in the host: mask by hand
        return re.sub(r"//[^/@]*@", "//***@", text)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = (f"{userinfo.split(':', 1)[0]}:***@{host}" if ":" in userinfo else f"***@{host}")
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_QUERY_KEYS.search(key) for key, _ in pairs):
            query = urllib.parse.urlencode(
                [(key, "***" if _SECRET_QUERY_KEYS.search(key) else value) for key, value in pairs],
                safe="*")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _split_credentials(url: str) -> Tuple[str, Optional[str], Optional[str]]:
    """``(url without user:password@, user, password)``; user and password unquoted."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    bare = urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, urllib.parse.unquote(user) or None, urllib.parse.unquote(password) if password else None


def _netrc_credentials(host: str, netrc_file: Optional[Union[str, os.PathLike]]):
    """``(login, password)`` of the netrc entry for ``host`` (or ``default``), else None."""
    import netrc

    path = netrc_file or os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.isfile(path):
        if netrc_file:
            raise InputError(netrc_file, "does not exist.", "Pass the path of a netrc file.")
        return None
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError) as error:
        if not netrc_file:   # the default file may serve other tools: ignored, as requests does
            return None
        # The parse error quotes the offending line, which may hold a password: not repeated.
        raise InputError(path, f"is not a readable netrc file ({type(error).__name__} at line "
                         f"{getattr(error, 'lineno', '?')}).", "Fix its syntax: "
                         "'machine HOST login USER password PASSWORD'.") from None
    if entry is None or not entry[0]:
        return None
    return entry[0], entry[2] or ""


def _plain(value: Any) -> Any:
    """A DICOM JSON value as a plain Python value (one value unwrapped, PN as its string)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        values = [_plain(v) for v in value]
        return values[0] if len(values) == 1 else values
    if type(value).__name__ == "PersonName":
        return str(value)
    return value


def _json_to_dict(item: Mapping[str, Any], keywords: Sequence[str]) -> Dict[str, Any]:
    """One QIDO-RS result (DICOM JSON) as ``{keyword: value}`` for the ``keywords`` present."""
    from pydicom import Dataset

    dataset = Dataset.from_json(dict(item))
    return {k: _plain(dataset.get(k)) for k in keywords if k in dataset}


def _as_part10(dataset: Any) -> Any:
    """``dataset`` re-encoded as a DICOM file (128-byte preamble, "DICM", complete file meta).

    dicomweb-client sends datasets as pydicom writes them; an in-memory dataset (e.g. from
    highdicom) would go without the preamble, some servers (Orthanc) store those bytes as they
    are, and a later WADO-RS retrieval then fails to parse them. Encoding as a file first avoids it.
    """
    from io import BytesIO

    import pydicom

    if getattr(dataset, "preamble", None) is not None and "TransferSyntaxUID" in getattr(
            dataset, "file_meta", {}):
        return dataset
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


class DicomWebStore:
    """A DICOMweb server (QIDO-RS, WADO-RS, STOW-RS).

    Args:
        url: DICOMweb root URL (no trailing ``/studies``); may hold ``user:password@`` (taken out
            of the URL and sent as basic authentication).
        headers: extra HTTP headers for every request.
        timeout: seconds per request.
        trust_env: use proxy settings from the environment (set False for a server on loopback
            behind an environment proxy). Credentials from the environment and netrc are read
            either way (see the module docstring).
        session: a ready :class:`requests.Session` (certificates, a custom auth); its ``auth`` is
            kept unless credentials are found as described in the module docstring.
        retries: attempts per request (dicomweb-client retries failed requests, unreachable
            server included, with exponential back-off: 1 s, 2 s, 4 s ...); 1 = no retry.
        username, password: HTTP basic authentication.
        token: HTTP bearer token (``Authorization: Bearer <token>``); wins over a user name given
            at the same level.
        netrc_file: netrc file to read (default ``$NETRC``, else ``~/.netrc``, when present).

    Attributes:
        url: the URL as given, password masked (:func:`mask_url`): safe to print or store.
        auth: how requests authenticate: ``None``, or ``"basic (<source>)"`` / ``"bearer
            (<source>)"`` with source ``argument``, ``url``, ``environment`` or ``netrc``.
    """

    def __init__(self, url: str, headers: Optional[Dict[str, str]] = None, timeout: float = 60.0,
                 trust_env: bool = True, session: Any = None, retries: int = 5,
                 username: Optional[str] = None, password: Optional[str] = None,
                 token: Optional[str] = None,
                 netrc_file: Optional[Union[str, os.PathLike]] = None) -> None:
        import requests
        from dicomweb_client.api import DICOMwebClient

        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"DicomWebStore: url must be an http(s) DICOMweb root such as "
                             f"http://127.0.0.1:8042/dicom-web, got {mask_url(url)!r}.")
        if int(retries) < 1:
            raise ValueError(f"DicomWebStore: retries must be >= 1, got {retries!r}.")
        self.url = mask_url(url.rstrip("/"))
        bare_url, url_user, url_password = _split_credentials(url.rstrip("/"))
        headers = dict(headers or {})
        self._secrets: List[str] = []
        self.auth: Optional[str] = None
        kind, source, credentials = self._find_credentials(
            bare_url, username, password, token, url_user, url_password, netrc_file)
        if session is None:
            session = requests.Session()
            session.trust_env = bool(trust_env)
        if kind == "bearer":
            headers["Authorization"] = f"Bearer {credentials}"
            self._secrets.append(str(credentials))
        elif kind == "basic":
            session.auth = requests.auth.HTTPBasicAuth(*credentials)
            self._secrets.append(str(credentials[1]))
        if kind:
            self.auth = f"{kind} ({source})"
        self._client = DICOMwebClient(bare_url, session=session, headers=headers or None,
                                      timeout=timeout)
        self._client.set_http_retry_params(retry=int(retries) > 1, max_attempts=int(retries))

    def _find_credentials(self, bare_url, username, password, token, url_user, url_password,
                          netrc_file):
        """``(kind, source, credentials)``: the first of argument, URL, environment, netrc."""
        if token:
            return "bearer", "argument", token
        if username is not None or password is not None:
            if not username:
                raise ValueError(f"DicomWebStore({self.url!r}): a password was given without a "
                                 "user name; pass username= as well (CLI: --user).")
            return "basic", "argument", (username, password or "")
        if url_user is not None:
            return "basic", "url", (url_user, url_password or "")
        if os.environ.get(ENV_TOKEN):
            return "bearer", "environment", os.environ[ENV_TOKEN]
        if os.environ.get(ENV_USER):
            return "basic", "environment", (os.environ[ENV_USER], os.environ.get(ENV_PASSWORD, ""))
        host = urllib.parse.urlsplit(bare_url).hostname or ""
        found = _netrc_credentials(host, netrc_file)
        if found:
            return "basic", "netrc", found
        return None, None, None

    def __repr__(self) -> str:
        auth = f", auth={self.auth!r}" if self.auth else ""
        return f"DicomWebStore({self.url!r}{auth})"

    def _mask(self, text: str) -> str:
        """``text`` with any credential this store holds replaced by ``***``."""
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    # -- error handling --------------------------------------------------------------------------
    def _call(self, what: str, function, *args, **kwargs):
        """``function(*args, **kwargs)`` with request failures as :class:`DicomWebError`.

        Messages name the masked URL and the exception type only: the text of a requests
        exception can quote the URL of the request.
        """
        import requests

        try:
            return function(*args, **kwargs)
        except requests.exceptions.ConnectionError as error:
            raise DicomWebError(
                f"{self.url}: cannot connect for {what} ({error.__class__.__name__}). Fix: check "
                "that the server runs and that the URL is its DICOMweb root (Orthanc: "
                "http://host:8042/dicom-web).") from None
        except requests.exceptions.Timeout:
            raise DicomWebError(f"{self.url}: {what} timed out. Fix: raise the timeout or "
                                "pull smaller parts (one series at a time).") from None
        except requests.exceptions.HTTPError as error:
            status = getattr(error.response, "status_code", "?")
            hint = {401: f"pass credentials: --user and --password, or --token (arguments "
                         f"username=, password=, token=), or the environment variables "
                         f"{ENV_USER} and {ENV_PASSWORD}, or {ENV_TOKEN}, or a netrc entry for "
                         "the host",
                    403: "the server refuses this client or these credentials; check its "
                         "access rules",
                    404: "check the UIDs and that the URL is the DICOMweb root",
                    }.get(status, "see the server's log")
            raise DicomWebError(f"{self.url}: {what} failed with HTTP {status}. "
                                f"Fix: {hint}.") from None
        except requests.exceptions.RequestException as error:
            raise DicomWebError(f"{self.url}: {what} failed ({error.__class__.__name__}). Fix: "
                                "check the URL and the server's log.") from None

    # -- QIDO-RS ---------------------------------------------------------------------------------
    def list_studies(self, limit: Optional[int] = None, **filters: Any) -> List[Dict[str, Any]]:
        """Studies on the server, as dicts of :data:`STUDY_FIELDS` (those the server returns).

        Values are as the server sent them: a ``StudyInstanceUID`` from here must pass
        :func:`~SaliencyTrustLib.io.safe_paths.validate_uid` before it names a file (the pull
        methods check it).

        Args:
            limit: at most this many studies (None: all, paging through the server's pages).
            **filters: QIDO-RS matching keys by keyword, e.g. ``PatientID="cxr-0-0001"``,
                ``ModalitiesInStudy="CR"``, ``StudyDate="20240101-"``.
        """
        results = self._call("searching studies", self._client.search_for_studies,
                             fields=list(STUDY_FIELDS), search_filters=filters or None,
                             limit=limit, get_remaining=limit is None)
        return [_json_to_dict(item, STUDY_FIELDS) for item in results]

    def list_series(self, study_instance_uid: str, **filters: Any) -> List[Dict[str, Any]]:
        """Series of one study, as dicts of :data:`SERIES_FIELDS`."""
        study = self._requested_uid(study_instance_uid, "StudyInstanceUID")
        results = self._call(f"searching series of study {study}",
                             self._client.search_for_series,
                             study_instance_uid=study, fields=list(SERIES_FIELDS),
                             search_filters=filters or None, get_remaining=True)
        return [_json_to_dict(item, SERIES_FIELDS) for item in results]

    def list_instances(self, study_instance_uid: str,
                       series_instance_uid: Optional[str] = None) -> List[Dict[str, Any]]:
        """Instances of a study (or of one series), as dicts of :data:`INSTANCE_FIELDS`."""
        study = self._requested_uid(study_instance_uid, "StudyInstanceUID")
        series = (None if series_instance_uid is None
                  else self._requested_uid(series_instance_uid, "SeriesInstanceUID"))
        results = self._call(f"searching instances of study {study}",
                             self._client.search_for_instances,
                             study_instance_uid=study, series_instance_uid=series,
                             fields=list(INSTANCE_FIELDS), get_remaining=True)
        return [_json_to_dict(item, INSTANCE_FIELDS) for item in results]

    def _requested_uid(self, value: Any, what: str) -> str:
        """A UID the caller asks for; it goes into the request's URL path, so it is checked first."""
        return validate_uid(value, what, source=self.url)

    # -- WADO-RS ---------------------------------------------------------------------------------
    def _retrieve(self, what: str, function, *args) -> List[Any]:
        """A WADO-RS retrieval; a response dicomweb-client cannot parse is a DicomWebError."""
        try:
            return self._call(what, function, *args)
        except DicomWebError:
            raise
        except Exception as error:  # noqa: BLE001 - the server's bytes, parsed by dicomweb-client
            # and pydicom, fail with many types; the type and message are kept.
            raise DicomWebError(f"{self.url}: {what}: the response could not be read as DICOM "
                                f"({type(error).__name__}: {self._mask(str(error))[:300]}). Fix: "
                                "check the study on the server (its log, a re-import).") from None

    def retrieve_study(self, study_instance_uid: str) -> List[Any]:
        """Every instance of a study as pydicom datasets (with pixel data)."""
        study = self._requested_uid(study_instance_uid, "StudyInstanceUID")
        return self._retrieve(f"retrieving study {study}", self._client.retrieve_study, study)

    def retrieve_series(self, study_instance_uid: str, series_instance_uid: str) -> List[Any]:
        """Every instance of one series as pydicom datasets (with pixel data)."""
        study = self._requested_uid(study_instance_uid, "StudyInstanceUID")
        series = self._requested_uid(series_instance_uid, "SeriesInstanceUID")
        return self._retrieve(f"retrieving series {series}", self._client.retrieve_series,
                              study, series)

    def _save_all(self, datasets: Iterable[Any], out_dir: Union[str, os.PathLike],
                  study_instance_uid: str, series_instance_uid: Optional[str] = None) -> List[Path]:
        """Write retrieved instances as ``out_dir/<study>/<series>/<SOP>.dcm``.

        Every instance is checked before anything is written: its three UIDs must be DICOM UIDs,
        it must belong to the requested study (and series), and its path must stay inside
        ``out_dir``. One bad instance refuses the whole retrieval with one :class:`DicomWebError`.
        """
        from pydicom.dataset import FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian

        root = Path(out_dir)
        requested = f"study {study_instance_uid}" + (
            f", series {series_instance_uid}" if series_instance_uid else "")
        planned = []
        for number, ds in enumerate(datasets, start=1):
            try:
                study = validate_uid(ds.get("StudyInstanceUID"), "StudyInstanceUID")
                series = validate_uid(ds.get("SeriesInstanceUID"), "SeriesInstanceUID")
                sop = validate_uid(ds.get("SOPInstanceUID"), "SOPInstanceUID")
                if study != study_instance_uid or (series_instance_uid and series != series_instance_uid):
                    raise InputError(None, f"it belongs to study {study}, series {series}, not to "
                                     f"the {requested} that was asked for.",
                                     "Check the server: it answered with another study's instances.")
                path = child_path(root, study, series, f"{sop}.dcm")
            except InputError as error:
                raise DicomWebError(f"{self.url}: {requested}: instance {number} returned by the "
                                    f"server was refused: {error.reason} Nothing of this "
                                    f"retrieval was written. Fix: {error.fix}") from None
            planned.append((ds, path))
        paths = []
        for ds, path in planned:
            if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
                ds.file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(path, enforce_file_format=True)
            except OSError as error:
                raise InputError(path, f"cannot be written ({error.strerror or error}).",
                                 "Choose an output folder you can write to, with free space.") \
                    from error
            paths.append(path)
        return sorted(paths)

    def pull_study(self, study_instance_uid: str, out_dir: Union[str, os.PathLike]) -> List[Path]:
        """Download a study into ``out_dir/<StudyInstanceUID>/<SeriesInstanceUID>/<SOP>.dcm``.

        Returns:
            The files written, sorted.

        Raises:
            InputError: ``study_instance_uid`` is not a DICOM UID, or ``out_dir`` not writable.
            DicomWebError: the request failed, or an instance has a UID that is not a DICOM UID,
                belongs to another study, or would land outside ``out_dir`` (nothing written).
        """
        study = self._requested_uid(study_instance_uid, "StudyInstanceUID")
        return self._save_all(self.retrieve_study(study), out_dir, study)

    def pull_series(self, study_instance_uid: str, series_instance_uid: str,
                    out_dir: Union[str, os.PathLike]) -> List[Path]:
        """Download one series into ``out_dir`` (same layout and checks as :meth:`pull_study`)."""
        study = self._requested_uid(study_instance_uid, "StudyInstanceUID")
        series = self._requested_uid(series_instance_uid, "SeriesInstanceUID")
        return self._save_all(self.retrieve_series(study, series), out_dir, study, series)

    # -- STOW-RS ---------------------------------------------------------------------------------
    def store(self, instances: Union[Any, str, os.PathLike, Sequence[Any]]) -> List[str]:
        """Store instances on the server (STOW-RS), grouped by study.

        Args:
            instances: pydicom datasets (e.g. what :func:`write_parametric_map` returns), DICOM
                files, folders of DICOM files, or a mix.

        Returns:
            SOP Instance UIDs the server reports as stored.

        Raises:
            DicomWebError: the request failed or the server refused an instance (its reason).
        """
        import pydicom
        from pydicom.dataset import Dataset

        from .dicom_read import expand_dicom_inputs

        try:
            items = expand_dicom_inputs(instances, "DICOM datasets, files or folders of them")
        except InputError as error:
            raise DicomWebError(f"{error} Nothing was stored on {self.url}.") from error
        datasets: List[Dataset] = []
        for item in items:
            if isinstance(item, Dataset):
                datasets.append(item)
                continue
            try:
                datasets.append(pydicom.dcmread(item))
            except (pydicom.errors.InvalidDicomError, OSError) as error:
                raise DicomWebError(f"{item}: not a DICOM file, not stored on {self.url}. "
                                    "Fix: pass DICOM files only.") from error
        by_study: Dict[str, List[Dataset]] = {}
        for ds in map(_as_part10, datasets):
            try:   # the UID goes into the request's URL path (studies/<uid>)
                study_uid = validate_uid(ds.get("StudyInstanceUID"), "StudyInstanceUID")
            except InputError as error:
                raise DicomWebError(f"instance {ds.get('SOPInstanceUID', '?')}: {error.reason} "
                                    f"Nothing was stored on {self.url}. Fix: {error.fix}") from None
            by_study.setdefault(study_uid, []).append(ds)
        stored: List[str] = []
        for study_uid, group in by_study.items():
            response = self._call(f"storing {len(group)} instance(s) of study {study_uid}",
                                  self._client.store_instances, group, study_uid)
            failed = response.get("FailedSOPSequence", []) if response is not None else []
            if failed:
                reasons = ", ".join(f"{f.get('ReferencedSOPInstanceUID', '?')} (reason "
                                    f"{f.get('FailureReason', '?')})" for f in failed)
                raise DicomWebError(f"{self.url}: the server refused {len(failed)} instance(s): "
                                    f"{reasons}. Fix: validate them (dciodvfy) and check the "
                                    "server's log.")
            for item in (response.get("ReferencedSOPSequence", []) if response else []):
                stored.append(str(item.ReferencedSOPInstanceUID))
        return stored


# ------------------------------------------------------------------------------------------------
# saliency-trust pacs {list,pull,push}
# ------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``saliency-trust pacs`` (no heavy import here)."""
    parser.add_argument("--url", required=True,
                        help="DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web")
    parser.add_argument("--no-env-proxy", action="store_true",
                        help="ignore HTTP(S)_PROXY from the environment (a server on loopback)")
    parser.add_argument("--retries", type=int, default=5,
                        help="attempts per request, with exponential back-off (default 5)")
    parser.add_argument("--user", help=f"HTTP basic user name (or ${ENV_USER}, a netrc entry)")
    parser.add_argument("--password",
                        help=f"HTTP basic password; visible to other users of this machine in "
                             f"the process list: prefer ${ENV_PASSWORD} or a netrc file")
    parser.add_argument("--token", help=f"HTTP bearer token (or ${ENV_TOKEN}); same caveat as "
                                        "--password")
    parser.add_argument("--netrc", help="netrc file with the server's credentials (default "
                                        "$NETRC, else ~/.netrc)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list studies (or the series of --study)")
    listing.add_argument("--study", help="StudyInstanceUID: list its series")
    listing.add_argument("--patient-id", help="only this PatientID")
    pull = actions.add_parser("pull", help="download a study (or one --series) into --out")
    pull.add_argument("--study", required=True, help="StudyInstanceUID")
    pull.add_argument("--series", help="SeriesInstanceUID (default: the whole study)")
    pull.add_argument("--out", required=True, help="folder; files go to OUT/<study>/<series>/")
    push = actions.add_parser("push", help="store DICOM files / folders (STOW-RS)")
    push.add_argument("paths", nargs="+", help="DICOM files or folders")


def run(args: argparse.Namespace) -> int:
    """Run ``saliency-trust pacs``; prints one line per study / series / file; 1 on error."""
    import sys

    try:
        store = DicomWebStore(args.url, trust_env=not args.no_env_proxy, retries=args.retries,
                              username=getattr(args, "user", None),
                              password=getattr(args, "password", None),
                              token=getattr(args, "token", None),
                              netrc_file=getattr(args, "netrc", None))
        if args.action == "list" and args.study:
            for series in store.list_series(args.study):
                print("\t".join(str(series.get(k, "")) for k in
                                ("SeriesInstanceUID", "Modality", "SeriesNumber",
                                 "NumberOfSeriesRelatedInstances", "SeriesDescription")))
        elif args.action == "list":
            filters = {"PatientID": args.patient_id} if args.patient_id else {}
            for study in store.list_studies(**filters):
                print("\t".join(str(study.get(k, "")) for k in
                                ("StudyInstanceUID", "PatientID", "StudyDate",
                                 "ModalitiesInStudy", "StudyDescription")))
        elif args.action == "pull":
            paths = (store.pull_series(args.study, args.series, args.out) if args.series
                     else store.pull_study(args.study, args.out))
            for path in paths:
                print(path)
        elif args.action == "push":
            for uid in store.store(args.paths):
                print(uid)
    except (DicomWebError, ValueError) as error:   # InputError is a ValueError
        print(f"saliency-trust pacs: {error}", file=sys.stderr)
        return 1
    return 0

"""The Orthanc test fixture: free loopback ports, DICOMweb on, retries a taken port, stops cleanly."""

import socket

import pytest
import requests

from support import orthanc as orthanc_module
from support.orthanc import OrthancServer

pytestmark = pytest.mark.pacs


def test_second_server_runs_beside_the_session_one_and_stops_cleanly(orthanc_server, tmp_path):
    with OrthancServer(workdir=tmp_path / "second") as second:
        ports = {orthanc_server.http_port, orthanc_server.dicom_port,
                 second.http_port, second.dicom_port}
        assert len(ports) == 4
        system = second.rest("GET", "/system").json()
        assert system["HttpPort"] == second.http_port and system["DicomPort"] == second.dicom_port
        assert system["PluginsEnabled"]
        plugins = second.rest("GET", "/plugins").json()
        assert "dicom-web" in plugins
        studies = second.session.get(f"{second.dicomweb_url}/studies", timeout=10)
        assert studies.status_code in (200, 204)
        process = second.process
    assert process.returncode == 0                      # shut down, not killed
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{second.http_port}/system", timeout=2)
    assert orthanc_server.rest("GET", "/system").status_code == 200


def test_a_taken_port_is_retried_with_new_ones(monkeypatch, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        picks = iter([taken, orthanc_module.free_port()])
        real_free_port = orthanc_module.free_port
        monkeypatch.setattr(orthanc_module, "free_port",
                            lambda host="127.0.0.1": next(picks, None) or real_free_port())
        with OrthancServer(workdir=tmp_path / "retry") as server:
            assert server.http_port != taken
            assert server.rest("GET", "/system").status_code == 200

"""A real Orthanc PACS for the tests: started on loopback with free ports, stopped cleanly.

:class:`OrthancServer` starts the Debian ``Orthanc`` binary with a generated JSON configuration:

* HTTP and DICOM ports picked free on ``127.0.0.1`` (retried when another process - e.g. another
  pytest-xdist worker - takes the port between the pick and Orthanc's bind),
* a private storage and index directory (a temporary folder),
* the DICOMweb plugin enabled (``/dicom-web/``: QIDO-RS, WADO-RS, STOW-RS),
* no authentication, but ``RemoteAccessAllowed: false`` so only loopback clients are served, and
  no DICOM peer is allowed to C-STORE into it.

It waits until ``GET /system`` answers, and :meth:`OrthancServer.stop` asks Orthanc to shut down
(``POST /tools/shutdown``), then terminates, then kills, only the process it started.

pytest use (each xdist worker is its own pytest session, so each gets its own server)::

    from support.orthanc import orthanc_server, orthanc   # noqa: F401  (in a conftest.py)

    def test_something(orthanc):                          # emptied before the test
        DicomWebStore(orthanc.dicomweb_url).store(datasets)

Outside pytest::

    with OrthancServer() as server:
        print(server.url, server.dicomweb_url)

Needs the Debian packages ``orthanc`` and ``orthanc-dicomweb`` (``make system-deps``). When they are
missing, :class:`OrthancNotInstalled` says so and how to install them: tests fail, they are never
skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional

import requests

#: Where the Debian package ``orthanc-dicomweb`` installs the plugin (``dpkg -L orthanc-dicomweb``).
DICOMWEB_PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)
#: The Debian package installs the server as ``/usr/sbin/Orthanc`` (not on a user's PATH).
ORTHANC_CANDIDATES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc", "/usr/local/bin/Orthanc")
INSTALL_HINT = ("install the Debian packages with `make system-deps` "
                "(apt-get install orthanc orthanc-dicomweb), or set SALIENCYTRUST_ORTHANC and "
                "SALIENCYTRUST_ORTHANC_DICOMWEB_PLUGIN to their paths")


class OrthancNotInstalled(RuntimeError):
    """The Orthanc binary or its DICOMweb plugin is not installed."""


class OrthancStartError(RuntimeError):
    """Orthanc did not answer on ``/system`` in time; the message holds the end of its log."""


def find_orthanc() -> str:
    """Path of the ``Orthanc`` executable (``$SALIENCYTRUST_ORTHANC``, PATH, then Debian paths)."""
    candidates = [os.environ.get("SALIENCYTRUST_ORTHANC"), shutil.which("Orthanc"),
                  *ORTHANC_CANDIDATES]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise OrthancNotInstalled(f"The Orthanc executable was not found; {INSTALL_HINT}.")


def find_dicomweb_plugin() -> str:
    """Path of ``libOrthancDicomWeb.so`` (``$SALIENCYTRUST_ORTHANC_DICOMWEB_PLUGIN`` first)."""
    candidates = [os.environ.get("SALIENCYTRUST_ORTHANC_DICOMWEB_PLUGIN"),
                  *DICOMWEB_PLUGIN_CANDIDATES]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    raise OrthancNotInstalled(f"The Orthanc DICOMweb plugin was not found; {INSTALL_HINT}.")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it; it can be taken again later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class OrthancServer:
    """One Orthanc process on loopback with the DICOMweb plugin.

    Args:
        workdir: folder for the configuration, storage, index and log; a new temporary folder
            (removed on :meth:`stop`) when None.
        aet: the server's DICOM application entity title.
        startup_timeout: seconds to wait for ``/system`` to answer, per attempt.
        attempts: how many times to retry with new ports when Orthanc dies at start (port taken).

    Attributes (after :meth:`start`): ``http_port``, ``dicom_port``, ``url``
    (``http://127.0.0.1:<http_port>``), ``dicomweb_url`` (``<url>/dicom-web``), ``log_path``.
    """

    host = "127.0.0.1"

    def __init__(self, workdir: Optional[os.PathLike] = None, aet: str = "SALTRUST",
                 startup_timeout: float = 30.0, attempts: int = 5) -> None:
        self.executable = find_orthanc()
        self.plugin = find_dicomweb_plugin()
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="orthanc-")) if workdir is None else Path(workdir)
        self.aet = aet
        self.startup_timeout = float(startup_timeout)
        self.attempts = int(attempts)
        self.http_port: Optional[int] = None
        self.dicom_port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None
        self.log_path = self.workdir / "orthanc.log"
        # Never route loopback calls through a proxy from the environment.
        self.session = requests.Session()
        self.session.trust_env = False

    # -- addresses -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """REST root, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """DICOMweb root for :class:`SaliencyTrustLib.io.dicomweb.DicomWebStore`."""
        return f"{self.url}/dicom-web"

    # -- life cycle ------------------------------------------------------------------------------
    def _write_config(self) -> Path:
        config = {
            "Name": f"SaliencyTrust test PACS ({os.getpid()})",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "DicomAlwaysAllowStore": False,
            "DicomCheckCalledAet": True,
            "DicomModalities": {},
            "StorageCompression": False,
            "SaveJobs": False,
            "ConcurrentJobs": 1,
            "HttpThreadsCount": 8,
            "HttpTimeout": 60,
            "Plugins": [self.plugin],
            "DicomWeb": {
                "Enable": True,
                "Root": "/dicom-web/",
                "EnableWado": False,
                "Host": f"{self.host}",
                "Ssl": False,
            },
        }
        path = self.workdir / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def _log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _wait_until_up(self) -> bool:
        """True when ``/system`` answers; False when the process died (e.g. its port was taken)."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if self.session.get(f"{self.url}/system", timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise OrthancStartError(
            f"Orthanc ({self.executable}) did not answer on {self.url}/system within "
            f"{self.startup_timeout:.0f} s. End of {self.log_path}:\n{self._log_tail()}")

    def start(self) -> "OrthancServer":
        """Start Orthanc and wait until it answers; returns ``self``."""
        if self.process is not None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(self.attempts):
            self.http_port, self.dicom_port = free_port(), free_port()
            if self.http_port == self.dicom_port:
                continue
            config = self._write_config()
            with open(self.log_path, "ab") as log:   # keep the log of a failed attempt
                self.process = subprocess.Popen(
                    [self.executable, str(config)], stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, cwd=self.workdir)
            if self._wait_until_up():
                return self
            self.process = None   # died at start: most likely a port was taken; retry
        raise OrthancStartError(
            f"Orthanc ({self.executable}) exited at start {self.attempts} times. End of "
            f"{self.log_path}:\n{self._log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Shut Orthanc down (REST shutdown, then SIGTERM, then SIGKILL) and remove a temp workdir."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                self.session.post(f"{self.url}/tools/shutdown", timeout=2)
            except requests.RequestException:
                pass
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        self.session.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "OrthancServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- REST helpers the tests use --------------------------------------------------------------
    def rest(self, method: str, path: str, **kwargs) -> requests.Response:
        """One call to Orthanc's REST API (``path`` like ``/studies``); raises on HTTP errors."""
        response = self.session.request(method, f"{self.url}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response

    def study_uids(self) -> List[str]:
        """StudyInstanceUIDs of every study stored, via the REST API (not DICOMweb)."""
        studies = self.rest("GET", "/studies", params={"expand": ""}).json()
        return sorted(s["MainDicomTags"]["StudyInstanceUID"] for s in studies)

    def clear(self) -> None:
        """Delete every patient (and so every study, series and instance)."""
        for patient in self.rest("GET", "/patients").json():
            self.rest("DELETE", f"/patients/{patient}")


try:  # the fixtures, when pytest is importable (always in the test suite)
    import pytest

    @pytest.fixture(scope="session")
    def orthanc_server(tmp_path_factory) -> Iterator[OrthancServer]:
        """One Orthanc per pytest session (per xdist worker), stopped at the end of the session."""
        server = OrthancServer(workdir=tmp_path_factory.mktemp("orthanc"))
        server.start()
        try:
            yield server
        finally:
            server.stop()

    @pytest.fixture
    def orthanc(orthanc_server: OrthancServer) -> OrthancServer:
        """The session's Orthanc, emptied before the test."""
        orthanc_server.clear()
        return orthanc_server
except ImportError:  # pragma: no cover - pytest-less use of OrthancServer
    pass

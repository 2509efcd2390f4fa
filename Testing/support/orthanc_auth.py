"""An Orthanc that asks for HTTP basic authentication, and a loopback DICOMweb stub for bearer tokens.

:class:`AuthOrthancServer` is :class:`~support.orthanc.OrthancServer` with
``AuthenticationEnabled`` and one registered user; its own REST helpers authenticate as that user.

:class:`BearerStub` is a tiny HTTP server on loopback that answers QIDO-RS ``/studies`` with an
empty list when the ``Authorization`` header is ``Bearer <token>``, 401 otherwise, and records the
headers it saw: Orthanc has no bearer-token authentication without an extra plugin.
"""

from __future__ import annotations

import http.server
import threading
from typing import List

from support.orthanc import OrthancServer


class AuthOrthancServer(OrthancServer):
    """Orthanc on loopback that refuses requests without the basic credentials ``user``/``password``."""

    def __init__(self, user: str, password: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.user, self.password = user, password
        self.session.auth = (user, password)

    def _write_config(self):
        import json

        path = super()._write_config()
        config = json.loads(path.read_text())
        config["AuthenticationEnabled"] = True
        config["RegisteredUsers"] = {self.user: self.password}
        path.write_text(json.dumps(config, indent=2))
        return path


class BearerStub:
    """A DICOMweb ``/studies`` endpoint that accepts one bearer token (see the module docstring)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.authorizations: List[str] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                header = self.headers.get("Authorization", "")
                stub.authorizations.append(header)
                ok = header == f"Bearer {stub.token}"
                body = b"[]" if ok else b"{}"
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/dicom+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep the test output quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/dicom-web"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "BearerStub":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

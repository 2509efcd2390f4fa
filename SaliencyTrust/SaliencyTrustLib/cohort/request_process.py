"""The parent side of ``saliency-trust run-request``: start the child, follow it, kill it at once.

:class:`StudyProcess` starts ``python -m SaliencyTrustLib run-request REQUEST.json``
(:mod:`.cli_request`) in a process group of its own, turns the child's protocol lines into
:class:`~SaliencyTrustLib.cohort.compute.Progress` steps and returns the results the child wrote
(``results.json``). :meth:`StudyProcess.kill` ends the child and everything it started (a
launcher such as Slicer's ``PythonSlicer`` starts the real interpreter as its own child) at once,
from any thread: SIGKILL to the process group on POSIX, ``taskkill /T /F`` on Windows. Committed
units stay in the results folder, so the same request run again resumes.

No Qt here: the Slicer module reads :meth:`StudyProcess.progress` in its worker thread.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Generator, List, Mapping, Optional, Sequence

from .cli_request import ERROR, FINISHED, PROGRESS, parse_protocol_line

#: Lines of the child's own output (log, warnings, a traceback) kept for the error message.
LOG_LINES_KEPT = 200


class StudyProcessError(RuntimeError):
    """The child failed: ``str(error)`` is its one-line reason; ``log`` the last lines it printed
    (with the traceback of an unexpected error); ``kind`` the exception type it named."""

    def __init__(self, message: str, log: Sequence[str] = (), kind: str = "") -> None:
        super().__init__(message)
        self.log = list(log)
        self.kind = kind


class StudyProcessCancelled(RuntimeError):
    """The child was killed by :meth:`StudyProcess.kill` (the user cancelled)."""


class StudyProcess:
    """One ``run-request`` child process.

    Args:
        request: the request file (:func:`SaliencyTrustLib.cohort.cli_request.write_request`).
        python: the interpreter command, a path or a list (default :data:`sys.executable`; the
            Slicer module passes ``PythonSlicer``).
        package_dir: the folder that holds ``SaliencyTrustLib``, put first on the child's
            ``PYTHONPATH`` so the child runs this very copy of the package (default: this one's).
        env: extra environment variables of the child.
    """

    def __init__(self, request, python: Any = None, package_dir: Optional[str] = None,
                 env: Optional[Mapping[str, str]] = None) -> None:
        self.request = Path(request)
        self.python: List[str] = [str(p) for p in (python if isinstance(python, (list, tuple))
                                                   else [python or sys.executable])]
        self.package_dir = package_dir or str(Path(__file__).resolve().parents[2])
        self.extra_env = dict(env or {})
        self.log: "collections.deque[str]" = collections.deque(maxlen=LOG_LINES_KEPT)
        self._lock = threading.Lock()
        self._process: Optional[subprocess.Popen] = None
        self._killed = False

    @property
    def command(self) -> List[str]:
        return self.python + ["-m", "SaliencyTrustLib", "run-request", str(self.request)]

    @property
    def pid(self) -> Optional[int]:
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> Optional[int]:
        return None if self._process is None else self._process.poll()

    @property
    def killed(self) -> bool:
        return self._killed

    def environment(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        env["PYTHONPATH"] = os.pathsep.join([self.package_dir] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"
        return env

    def start(self) -> "StudyProcess":
        """Start the child (once). Raises :class:`StudyProcessCancelled` if :meth:`kill` came first."""
        with self._lock:
            if self._killed:
                raise StudyProcessCancelled("cancelled before the process started")
            if self._process is not None:
                return self
            options: Dict[str, Any] = {}
            if os.name == "nt":
                options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
            else:
                options["start_new_session"] = True  # its own process group: killed as one
            self._process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=self.environment(), cwd=str(self.request.parent), text=True, encoding="utf-8",
                errors="replace", bufsize=1, **options)
        return self

    def kill(self) -> None:
        """End the child and all it started, now (idempotent, any thread). A later :meth:`start`
        refuses; :meth:`progress` raises :class:`StudyProcessCancelled`."""
        with self._lock:
            self._killed = True
            process = self._process
        if process is None:
            return
        if os.name == "nt":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True, check=False)
        else:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            process.kill()
        except OSError:
            pass

    def progress(self) -> Generator[Any, None, Dict[str, Any]]:
        """Start the child if needed and yield a :class:`~SaliencyTrustLib.cohort.compute.Progress`
        per pipeline step; return the results the child wrote (``results.json``).

        Raises:
            StudyProcessCancelled: :meth:`kill` was called.
            StudyProcessError: the child reported an error or ended without finishing.
        """
        from .compute import Progress

        self.start()
        process = self._process
        finished: Optional[Dict[str, Any]] = None
        error: Optional[Dict[str, Any]] = None
        try:
            for raw in process.stdout:
                line = raw.rstrip("\r\n")
                parsed = parse_protocol_line(line)
                if parsed is None:
                    if line.strip():
                        self.log.append(line)
                    continue
                kind, payload = parsed
                if kind == PROGRESS:
                    yield Progress(int(payload.get("done", 0)), int(payload.get("total", 0)), str(payload.get("message", "")))
                elif kind == FINISHED:
                    finished = payload
                elif kind == ERROR:
                    error = payload
            returncode = process.wait()
        except GeneratorExit:  # the reader stopped iterating: the work is not wanted any more
            self.kill()
            raise
        finally:
            if self._killed:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            if process.stdout is not None and process.poll() is not None:
                process.stdout.close()
        if self._killed:
            raise StudyProcessCancelled("cancelled by the user")
        if error is not None:
            raise StudyProcessError(str(error.get("error", "the study process failed")), self.log,
                                    str(error.get("type", "")))
        if finished is None or returncode != 0:
            raise StudyProcessError(f"the study process ended with status {returncode} without finishing "
                                    f"(command: {' '.join(self.command)}).", self.log)
        results_path = Path(finished.get("results", ""))
        try:
            return json.loads(results_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as caught:
            raise StudyProcessError(f"the study process finished but {results_path} cannot be read ({caught}).",
                                    self.log) from None

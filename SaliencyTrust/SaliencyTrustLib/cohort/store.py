"""The results store: a folder that survives crashes and refuses a changed configuration.

Layout of a results folder ``OUT``::

    OUT/run.json                       configuration + its fingerprint, written once at creation
    OUT/store/units-rank<R>.sqlite     one SQLite database per process (WAL journal), one row per unit
    OUT/maps/<method>/<state>/<study>.npy   each saliency map, float32, written as it is made

Crash safety (``kill -9`` at any instant):

* A map file is written to a temporary name in its final folder, flushed, then renamed over the
  final name (``os.replace`` is atomic on POSIX), so a map file is either absent or complete.
* A unit's row is inserted in its own transaction *after* its map file is in place, so a row
  implies a complete map. A map file without a row (killed in between) is simply rewritten.
* SQLite in WAL mode with ``synchronous=NORMAL`` never loses a committed transaction when the
  *process* dies (only a power cut can roll back the last commits, which are then recomputed).
  On a network filesystem that lacks shared memory (NFS), set ``SALIENCY_TRUST_SQLITE_JOURNAL=DELETE``.
* Each process writes only its own database, so there are no writer locks between ranks; readers
  (the plan of a restarted run, the final assembly) open every database read-only.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set, Union

import numpy as np

from .fingerprint import ConfigurationChangedError, config_fingerprint, describe_change
from .units import Unit

PathLike = Union[str, Path]

RUN_FILE = "run.json"
STORE_DIR = "store"
MAPS_DIR = "maps"
#: Maps back on each study's own grid, and the gallery's inputs (written by :mod:`.compute`).
NATIVE_DIR = "native"
INPUTS_DIR = "inputs"
#: Everything else a run writes into its folder (assembly, report, DICOM results): removed with
#: the run, so a restarted configuration never shows a file of the one before.
DERIVED_DIRS = ("figures", "dicom")
DERIVED_FILES = ("results.json", "units.csv", "scorecard.json", "scorecard.csv", "timing.json",
                 "dicom_outputs.json", "report.html")
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    unit_key    TEXT PRIMARY KEY,
    study_id    TEXT NOT NULL,
    method      TEXT NOT NULL,
    model_state TEXT NOT NULL,
    map_file    TEXT,
    metrics     TEXT NOT NULL,
    seconds     REAL NOT NULL,
    rank        INTEGER NOT NULL,
    finished_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    study_id TEXT PRIMARY KEY,
    stage    TEXT NOT NULL,
    message  TEXT NOT NULL,
    rank     INTEGER NOT NULL
);
"""


@dataclass
class UnitRecord:
    """One stored unit: its identity, the relative path of its map and its numbers.

    ``metrics`` maps a name (``"auprc"``, ``"ssim_vs_original"``, ``"spearman_vs_original"`` ...)
    to a float (NaN allowed: undefined, e.g. SSIM of a constant map).
    """

    unit: Unit
    map_file: Optional[str]
    metrics: Dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    rank: int = 0


def _safe_name(text: str) -> str:
    """A file-name-safe version of ``text`` (study ids may hold ``/`` or ``:``), kept unique."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    if safe != text:
        import hashlib

        safe = f"{safe}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return safe


def map_relpath(unit: Unit) -> str:
    """Relative path (inside ``OUT``) of a unit's map file."""
    return "/".join([MAPS_DIR, _safe_name(unit.method), _safe_name(unit.model_state), _safe_name(unit.study_id) + ".npy"])


def write_array_atomic(path: PathLike, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` at ``path`` so that ``path`` is never seen half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: PathLike, payload: Any) -> None:
    """Write JSON at ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=True), encoding="utf-8")
    os.replace(tmp, path)


def _journal_mode() -> str:
    mode = os.environ.get("SALIENCY_TRUST_SQLITE_JOURNAL", "WAL").upper()
    if mode not in {"WAL", "DELETE", "TRUNCATE", "PERSIST"}:
        raise ValueError(f"SALIENCY_TRUST_SQLITE_JOURNAL must be WAL, DELETE, TRUNCATE or PERSIST; got {mode!r}")
    return mode


def prepare_run_folder(root: PathLike, config: Mapping[str, Any], restart: bool = False) -> str:
    """Create ``root/run.json`` for ``config``, or check that an existing one matches.

    Call on one process (rank 0) before any other touches the folder.

    Args:
        root: the results folder (created when missing).
        config: every parameter that changes a number (see :mod:`.fingerprint`).
        restart: delete the stored units and maps of a previous configuration instead of refusing.

    Returns:
        The fingerprint (hex SHA-256).

    Raises:
        ConfigurationChangedError: ``root`` holds results of another configuration and
            ``restart`` is False; the message names the changed keys and the fixes.
    """
    root = Path(root)
    fingerprint = config_fingerprint(config)
    run_file = root / RUN_FILE
    if run_file.exists():
        stored = json.loads(run_file.read_text(encoding="utf-8"))
        if stored.get("fingerprint") == fingerprint:
            return fingerprint
        if not restart:
            raise ConfigurationChangedError(describe_change(root, stored.get("config", {}), dict(config)))
        clear_results(root)
    elif (root / STORE_DIR).exists() and any((root / STORE_DIR).glob("*.sqlite")) and not restart:
        raise ConfigurationChangedError(
            f"{root / STORE_DIR} holds unit databases but {run_file} is missing, so their configuration "
            "is unknown. Pass --restart to delete them, or use a new --out folder.")
    elif restart:
        clear_results(root)
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_file, {"fingerprint": fingerprint, "config": json.loads(json.dumps(config)),
                                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                 "schema_version": SCHEMA_VERSION})
    return fingerprint


def clear_results(root: PathLike) -> None:
    """Delete what a run wrote in ``root``: ``run.json``, the unit databases, the maps (model grid
    and native grid), the gallery inputs and the assembled files, report and DICOM results
    (nothing else: a user's own files in the folder stay)."""
    import shutil

    root = Path(root)
    for name in (STORE_DIR, MAPS_DIR, NATIVE_DIR, INPUTS_DIR, *DERIVED_DIRS):
        shutil.rmtree(root / name, ignore_errors=True)
    for name in (RUN_FILE, *DERIVED_FILES):
        (root / name).unlink(missing_ok=True)


def read_run_file(root: PathLike) -> Dict[str, Any]:
    """The stored ``run.json`` (fingerprint, config, created)."""
    return json.loads((Path(root) / RUN_FILE).read_text(encoding="utf-8"))


class RankStore:
    """The unit database of one process, ``OUT/store/units-rank<rank>.sqlite``.

    Args:
        root: results folder (``run.json`` must exist: see :func:`prepare_run_folder`).
        rank: this process's rank; only this process writes this database.
        fingerprint: checked against the database's own record (a database copied from another
            run is refused).
    """

    def __init__(self, root: PathLike, rank: int, fingerprint: str) -> None:
        self.root = Path(root)
        self.rank = int(rank)
        self.path = self.root / STORE_DIR / f"units-rank{self.rank}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
        self._db.execute(f"PRAGMA journal_mode={_journal_mode()}")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta(key, value) VALUES ('fingerprint', ?)", (fingerprint,))
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
        elif row[0] != fingerprint:
            self._db.close()
            raise ConfigurationChangedError(
                f"{self.path} was written with configuration {row[0][:12]}, not {fingerprint[:12]}. "
                "Use a new --out folder or pass --restart.")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "RankStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def write_map(self, unit: Unit, saliency_map: np.ndarray) -> str:
        """Write a unit's map atomically; returns its path relative to the results folder."""
        rel = map_relpath(unit)
        write_array_atomic(self.root / rel, np.asarray(saliency_map, dtype=np.float32))
        return rel

    def commit_unit(self, record: UnitRecord) -> None:
        """Record one finished unit in its own transaction (call after :meth:`write_map`).

        A unit already present (any rank) is never counted twice: the caller skips done units,
        and the primary key makes a second insert into this database a no-op.
        """
        metrics = json.dumps({k: (None if v is None else float(v)) for k, v in record.metrics.items()},
                             sort_keys=True, allow_nan=True)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT OR IGNORE INTO units(unit_key, study_id, method, model_state, map_file, metrics, "
                "seconds, rank, finished_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (record.unit.key, record.unit.study_id, record.unit.method, record.unit.model_state,
                 record.map_file, metrics, float(record.seconds), self.rank, time.time()))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def record_failure(self, study_id: str, stage: str, message: str) -> None:
        """Remember that ``study_id`` was skipped at ``stage`` and why (reported, never fatal)."""
        self._db.execute("INSERT OR REPLACE INTO failures(study_id, stage, message, rank) VALUES (?,?,?,?)",
                         (study_id, stage, message[:2000], self.rank))

    def clear_failure(self, study_id: str) -> None:
        self._db.execute("DELETE FROM failures WHERE study_id=?", (study_id,))


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60.0)


def _rows(path: Path, query: str) -> Iterator[tuple]:
    """The rows of ``query`` on one rank's database, streamed (a cursor, not a list); none while that
    rank is still creating the database."""
    db = _read_only(path)
    try:
        try:
            cursor = db.execute(query)
        except sqlite3.OperationalError as error:  # another rank between creating the file and its tables
            if "no such table" in str(error):
                return
            raise
        yield from cursor
    finally:
        db.close()


def iter_records_sorted(root: PathLike) -> Iterator[UnitRecord]:
    """Every unit once, in unit-key order: a streaming merge of every rank's database (memory does
    not grow with the number of units)."""
    import heapq

    query = ("SELECT unit_key, study_id, method, model_state, map_file, metrics, seconds, rank FROM units "
             "ORDER BY unit_key")
    streams = [_rows(path, query) for path in store_files(root)]
    previous = None
    for key, study, method, state, map_file, metrics, seconds, rank in heapq.merge(*streams, key=lambda row: row[0]):
        if key == previous:
            continue
        previous = key
        values = {k: (float("nan") if v is None else float(v)) for k, v in json.loads(metrics).items()}
        yield UnitRecord(Unit(study, method, state), map_file, values, float(seconds), int(rank))


def store_files(root: PathLike) -> List[Path]:
    """Every rank's unit database in ``root/store``, sorted."""
    return sorted((Path(root) / STORE_DIR).glob("units-rank*.sqlite"))


def done_unit_keys(root: PathLike) -> Set[str]:
    """Keys of every unit recorded by any rank (a restarted run skips them)."""
    keys: Set[str] = set()
    for path in store_files(root):
        keys.update(row[0] for row in _rows(path, "SELECT unit_key FROM units"))
    return keys


def iter_records(root: PathLike) -> Iterator[UnitRecord]:
    """Every stored unit of every rank (in database order; may repeat a key across databases)."""
    for path in store_files(root):
        query = "SELECT unit_key, study_id, method, model_state, map_file, metrics, seconds, rank FROM units"
        for key, study, method, state, map_file, metrics, seconds, rank in _rows(path, query):
            values = {k: (float("nan") if v is None else float(v)) for k, v in json.loads(metrics).items()}
            yield UnitRecord(Unit(study, method, state), map_file, values, float(seconds), int(rank))


def read_failures(root: PathLike) -> Dict[str, Dict[str, Any]]:
    """``{study_id: {"stage", "message", "rank"}}`` over every rank."""
    failures: Dict[str, Dict[str, Any]] = {}
    for path in store_files(root):
        for study, stage, message, rank in _rows(path, "SELECT study_id, stage, message, rank FROM failures"):
            failures[study] = {"stage": stage, "message": message, "rank": int(rank)}
    return failures


def collect_records(root: PathLike) -> Dict[str, UnitRecord]:
    """Every unit once, keyed by unit key (the first database in rank order wins a repeat)."""
    records: Dict[str, UnitRecord] = {}
    for record in iter_records(root):
        records.setdefault(record.unit.key, record)
    return records


def load_map(root: PathLike, map_file: str) -> np.ndarray:
    """Read a stored map (float32) by its path relative to the results folder."""
    return np.load(Path(root) / map_file)

"""A DICOMweb PACS as a source of studies and a place to store results (dicomweb-client).

:class:`DicomWebStore` wraps :class:`dicomweb_client.api.DICOMwebClient` with what a trust run
needs: list studies / series / instances (QIDO-RS) as plain dicts, pull a study or series as
pydicom datasets or into a local folder (WADO-RS), and store instances (STOW-RS), with errors
that name the server and the fix. ``url`` is the DICOMweb root, e.g. Orthanc's
``http://127.0.0.1:8042/dicom-web``, dcm4chee's ``http://host:8080/dcm4chee-arc/aets/DCM4CHEE/rs``.

It is also the ``saliency-trust pacs`` command (``list``, ``pull``, ``push``); see :func:`run`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

__all__ = ["DicomWebStore", "DicomWebError", "add_arguments", "run"]

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



def mask_url(text: Optional[str]) -> Optional[str]:
    """``text`` (a URL, or a sentence holding one) with every ``user:password@`` password replaced
    by ``***`` (for messages, logs and result files)."""
    if not text:
        return text
    import re

    return re.sub(r"(://[^/\s:@]*):[^/\s@]*@", r"\1:***@", str(text))


class DicomWebError(RuntimeError):
    """A DICOMweb request failed; the message names the server, the request and a fix."""


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
        url: DICOMweb root URL (no trailing ``/studies``).
        headers: extra HTTP headers for every request (e.g. ``{"Authorization": "Bearer ..."}``).
        timeout: seconds per request.
        trust_env: use proxy settings and ``.netrc`` from the environment (set False for a server
            on loopback behind an environment proxy).
        session: a ready :class:`requests.Session` (authentication, certificates); overrides
            ``trust_env``.
        retries: attempts per request (dicomweb-client retries failed requests, unreachable
            server included, with exponential back-off: 1 s, 2 s, 4 s ...); 1 = no retry.
    """

    def __init__(self, url: str, headers: Optional[Dict[str, str]] = None, timeout: float = 60.0,
                 trust_env: bool = True, session: Any = None, retries: int = 5) -> None:
        import requests
        from dicomweb_client.api import DICOMwebClient

        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"DicomWebStore: url must be an http(s) DICOMweb root such as "
                             f"http://127.0.0.1:8042/dicom-web, got {url!r}.")
        self.url = url.rstrip("/")
        if session is None:
            session = requests.Session()
            session.trust_env = bool(trust_env)
        self._client = DICOMwebClient(self.url, session=session, headers=headers,
                                      timeout=timeout)
        if int(retries) < 1:
            raise ValueError(f"DicomWebStore: retries must be >= 1, got {retries!r}.")
        self._client.set_http_retry_params(retry=int(retries) > 1, max_attempts=int(retries))

    def __repr__(self) -> str:
        return f"DicomWebStore({self.url!r})"

    # -- error handling --------------------------------------------------------------------------
    def _call(self, what: str, function, *args, **kwargs):
        import requests

        try:
            return function(*args, **kwargs)
        except requests.exceptions.ConnectionError as error:
            raise DicomWebError(
                f"{self.url}: cannot connect for {what} ({error.__class__.__name__}). Fix: check "
                "that the server runs and that the URL is its DICOMweb root (Orthanc: "
                "http://host:8042/dicom-web).") from error
        except requests.exceptions.Timeout as error:
            raise DicomWebError(f"{self.url}: {what} timed out. Fix: raise the timeout or "
                                "pull smaller parts (one series at a time).") from error
        except requests.exceptions.HTTPError as error:
            status = getattr(error.response, "status_code", "?")
            hint = {401: "pass credentials (headers or session)",
                    403: "the server refuses this client; check its access rules",
                    404: "check the UIDs and that the URL is the DICOMweb root",
                    }.get(status, "see the server's log")
            raise DicomWebError(f"{self.url}: {what} failed with HTTP {status}. "
                                f"Fix: {hint}.") from error

    # -- QIDO-RS ---------------------------------------------------------------------------------
    def list_studies(self, limit: Optional[int] = None, **filters: Any) -> List[Dict[str, Any]]:
        """Studies on the server, as dicts of :data:`STUDY_FIELDS` (those the server returns).

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
        results = self._call(f"searching series of study {study_instance_uid}",
                             self._client.search_for_series,
                             study_instance_uid=study_instance_uid, fields=list(SERIES_FIELDS),
                             search_filters=filters or None, get_remaining=True)
        return [_json_to_dict(item, SERIES_FIELDS) for item in results]

    def list_instances(self, study_instance_uid: str,
                       series_instance_uid: Optional[str] = None) -> List[Dict[str, Any]]:
        """Instances of a study (or of one series), as dicts of :data:`INSTANCE_FIELDS`."""
        results = self._call(f"searching instances of study {study_instance_uid}",
                             self._client.search_for_instances,
                             study_instance_uid=study_instance_uid,
                             series_instance_uid=series_instance_uid,
                             fields=list(INSTANCE_FIELDS), get_remaining=True)
        return [_json_to_dict(item, INSTANCE_FIELDS) for item in results]

    # -- WADO-RS ---------------------------------------------------------------------------------
    def retrieve_study(self, study_instance_uid: str) -> List[Any]:
        """Every instance of a study as pydicom datasets (with pixel data)."""
        return self._call(f"retrieving study {study_instance_uid}", self._client.retrieve_study,
                          study_instance_uid)

    def retrieve_series(self, study_instance_uid: str, series_instance_uid: str) -> List[Any]:
        """Every instance of one series as pydicom datasets (with pixel data)."""
        return self._call(f"retrieving series {series_instance_uid}",
                          self._client.retrieve_series, study_instance_uid, series_instance_uid)

    @staticmethod
    def _save_all(datasets: Iterable[Any], out_dir: Union[str, os.PathLike]) -> List[Path]:
        from pydicom.dataset import FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian

        paths = []
        for ds in datasets:
            folder = Path(out_dir) / str(ds.StudyInstanceUID) / str(ds.SeriesInstanceUID)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{ds.SOPInstanceUID}.dcm"
            if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
                ds.file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        return sorted(paths)

    def pull_study(self, study_instance_uid: str, out_dir: Union[str, os.PathLike]) -> List[Path]:
        """Download a study into ``out_dir/<StudyInstanceUID>/<SeriesInstanceUID>/<SOP>.dcm``.

        Returns:
            The files written, sorted.
        """
        return self._save_all(self.retrieve_study(study_instance_uid), out_dir)

    def pull_series(self, study_instance_uid: str, series_instance_uid: str,
                    out_dir: Union[str, os.PathLike]) -> List[Path]:
        """Download one series into ``out_dir`` (same layout as :meth:`pull_study`)."""
        return self._save_all(self.retrieve_series(study_instance_uid, series_instance_uid),
                              out_dir)

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
        from .errors import InputError

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
            by_study.setdefault(str(ds.StudyInstanceUID), []).append(ds)
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

    store = DicomWebStore(args.url, trust_env=not args.no_env_proxy, retries=args.retries)
    try:
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
    except DicomWebError as error:
        print(f"saliency-trust pacs: {error}", file=sys.stderr)
        return 1
    return 0

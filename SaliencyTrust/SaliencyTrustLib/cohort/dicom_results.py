"""A study run's results as DICOM, where a lab uses them: per study and method a Parametric Map
and a SEG of the map on the study's own grid, and the scorecard as a TID 1500 SR, all in the
study's DICOM Study (``saliency-trust evaluate --write-dicom``); optionally stored back to a
DICOMweb server (``--push URL``, e.g. the PACS the studies came from).

Only studies read from DICOM (a series folder or file, or a ``dicomweb:`` study of the cohort
cache) can be referenced; any other study is listed with the reason. One study's failure is
recorded for that study and the others go on (``dicom_outputs.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from .compute import native_relpath
from .sources import Cohort

DICOM_DIR = "dicom"


def _dicom_sources(study, cohort: Cohort, root: Path) -> Optional[str]:
    """The DICOM series folder or file a study was read from, or None (not DICOM)."""
    image = study.image
    if isinstance(image, str) and image.startswith("dicomweb:"):
        from .prepare import _fetch_dicomweb

        return _fetch_dicomweb(cohort, image.split(":", 1)[1], root / "cache")
    if not isinstance(image, str):
        return None
    path = Path(image)
    if path.is_dir() or (path.is_file() and path.suffix.lower() in (".dcm", "")):
        return str(path)
    return None


def write_study_objects(map_volumes: Dict[str, Any], sources: Any, directory, scorecard: Any) -> List[Path]:
    """The DICOM objects of one study in ``directory``: per method a Parametric Map
    (``saliency_<method>_pm.dcm``) and a SEG of map >= 0.5 (``saliency_<method>_seg.dcm``), and the
    scorecard SR (``scorecard_sr.dcm``) citing the maps; all over ``sources`` (the study's DICOM
    files or folder). Used by ``evaluate --write-dicom`` and the Slicer module's export.

    Args:
        map_volumes: ``{method: ImageVolume}`` maps on the source series' grid.
        sources: what :func:`SaliencyTrustLib.io.dicom_write.write_parametric_map` takes.
        directory: output folder (created).
        scorecard: a :class:`~SaliencyTrustLib.criteria.Scorecard`.

    Returns:
        The files written, in that order.
    """
    from ..io.dicom_write import write_parametric_map, write_scorecard_sr, write_seg
    from ..io.safe_paths import safe_name

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    evidence = []
    for number, (method, volume) in enumerate(map_volumes.items()):
        path = directory / f"saliency_{safe_name(method)}_pm.dcm"
        evidence.append(write_parametric_map(volume, sources, path, method=method, series_number=901 + 10 * number))
        written.append(path)
        path = directory / f"saliency_{safe_name(method)}_seg.dcm"
        write_seg(volume, sources, path, threshold=0.5, method=method, series_number=902 + 10 * number)
        written.append(path)
    path = directory / "scorecard_sr.dcm"
    write_scorecard_sr(scorecard, sources, path, further_evidence=evidence, sidecar=False)
    written.append(path)
    return written


def write_dicom_results(root, results: Dict[str, Any], cohort: Cohort, push: Optional[str] = None
                        ) -> Dict[str, Any]:
    """Write (and optionally store to ``push``) the DICOM objects of every evaluated study.

    Args:
        root: the results folder (holds ``native/<study>/<method>.nii.gz``).
        results: the run's ``results.json`` content.
        cohort: the cohort the run evaluated (where each study's DICOM files are).
        push: a DICOMweb root URL to STOW-RS the objects to, or None.

    Returns:
        ``{study_id: {"files": [...], "stored": n} | {"skipped": reason} | {"error": message}}``,
        also written to ``dicom_outputs.json``.
    """
    from ..criteria import Scorecard
    from ..io import read_image
    from ..io.dicomweb import DicomWebStore, mask_url
    from ..io.safe_paths import child_path, safe_name
    from .store import write_json_atomic

    root = Path(root)
    card = Scorecard.from_dict(results["scorecard"])
    by_id = {s.study_id: s for s in cohort.studies}
    store = DicomWebStore(push) if push else None
    outputs: Dict[str, Any] = {}
    for study_id, maps in sorted(results.get("native_maps", {}).items()):
        sources = _dicom_sources(by_id[study_id], cohort, root) if study_id in by_id else None
        if sources is None:
            outputs[study_id] = {"skipped": "not read from DICOM: nothing to reference"}
            continue
        try:
            folder = child_path(root / DICOM_DIR, safe_name(study_id))
            volumes = {method: read_image(root / native_relpath(study_id, method)) for method in sorted(maps)}
            written = write_study_objects(volumes, sources, folder, card)
            entry: Dict[str, Any] = {"files": [str(p.relative_to(root)) for p in written]}
            if store is not None:
                entry["stored"] = len(store.store(written))
                entry["server"] = mask_url(push)
            outputs[study_id] = entry
        except Exception as error:  # noqa: BLE001 - one study's DICOM never ends the others
            outputs[study_id] = {"error": mask_url(f"{type(error).__name__}: {error}")}
    write_json_atomic(root / "dicom_outputs.json", outputs)
    return outputs

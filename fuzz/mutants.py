"""Deterministic mutants of real DICOM files, and a tally of how the readers take them.

Where the fuzzer (``fuzz_readers.py``) explores at random, these are the damages met in practice,
each made the same way every run: truncations, byte flips, and header edits (wrong ``Rows`` /
``Columns`` / ``BitsAllocated`` / ``NumberOfFrames`` / ``TransferSyntaxUID``, pixel data removed,
``RescaleSlope`` NaN, a window of width 0, garbage in a position...), plus structure edits of
SEG and RTSTRUCT objects.

``python fuzz/mutants.py [--limit-kb 64] [--timeout 30] [--report FILE]`` mutates the pydicom test files (the
``pydicom.data`` files and those of ``pydicom-data``) of at most ``--limit-kb`` and the seed corpus,
reads each mutant with ``read_image`` (ground-truth objects with ``read_ground_truth`` against the
fuzz references) and prints the outcome counts; exit status 1 when any outcome breaks the contract
(see ``fuzz_readers.py``) or a read takes longer than ``--timeout`` seconds (a hang). ``Testing/io/test_io_robust_input.py`` runs the same over a subset.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import struct
import sys
import traceback
import warnings
import zlib
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
if str(HERE.parent / "SaliencyTrust") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "SaliencyTrust"))

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
from pydicom import config  # noqa: E402

TRUNCATIONS = (0.05, 0.25, 0.5, 0.75, 0.95, 0.999)
FLIPS_PER_FILE = 8
GROUND_TRUTH_MODALITIES = ("SEG", "RTSTRUCT", "SR")


def _set(keyword: str, value) -> Callable:
    def edit(ds):
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            from pydicom.datadict import dictionary_VR

            vr = dictionary_VR(keyword)
            if keyword in ds:
                del ds[keyword]
            # Values a writer would refuse (text in a number, NaN) are written as they are.
            ds.add_new(keyword, vr if not isinstance(value, str) or vr not in ("US", "SS", "UL", "SL", "FD", "FL")
                       else "LO", value)
    return edit


def _element(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element (the encoding of every file meta group)."""
    if len(value) % 2:
        value += b"\x00" if vr == b"UI" else b" "
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR"):
        return struct.pack("<HH2sHI", group, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def with_transfer_syntax(data: bytes, syntax: Optional[str]) -> Optional[bytes]:
    """``data`` whose file meta says ``syntax`` (None: no syntax), the data set's bytes untouched.

    This is the damage of a wrong Transfer Syntax UID: the data set stays encoded as it was, only
    the meta group lies. ``syntax`` is written as raw text (``"a\\b"`` gives two values). None
    when ``data`` has no Part 10 meta group.
    """
    if data[128:132] != b"DICM":
        return None
    position, elements = 132, []
    while position + 8 <= len(data):
        group, element, vr = struct.unpack("<HH2s", data[position:position + 6])
        if group != 2:
            break
        if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR"):
            length, header = struct.unpack("<I", data[position + 8:position + 12])[0], 12
        else:
            length, header = struct.unpack("<H", data[position + 6:position + 8])[0], 8
        value = data[position + header:position + header + length]
        if (group, element) != (2, 0):
            elements.append((element, vr, value))
        position += header + length
    rebuilt = b"".join(_element(2, element, vr, value) for element, vr, value in elements
                       if element != 0x10)
    if syntax is not None:
        rebuilt = b"".join(
            _element(2, element, vr, value) for element, vr, value in elements if element < 0x10) + \
            _element(2, 0x10, b"UI", syntax.encode("ascii")) + b"".join(
            _element(2, element, vr, value) for element, vr, value in elements if element > 0x10)
    group_length = _element(2, 0, b"UL", struct.pack("<I", len(rebuilt)))
    return data[:132] + group_length + rebuilt + data[position:]


#: name -> the Transfer Syntax UID written into the meta group, the data set left as it is.
SYNTAX_EDITS: Dict[str, Optional[str]] = {
    "syntax=jpeg-baseline": pydicom.uid.JPEGBaseline8Bit,
    "syntax=rle": pydicom.uid.RLELossless,
    "syntax=explicit-big": pydicom.uid.ExplicitVRBigEndian,
    "syntax=implicit": pydicom.uid.ImplicitVRLittleEndian,
    "syntax=explicit-little": pydicom.uid.ExplicitVRLittleEndian,
    "syntax=private": "1.2.840.99999.9.9.9",
    "syntax=two-values": "1.2.840.10008.1.2.1\\1.2",
    "syntax-removed": None,
}


def _per_frame(edit_item: Callable) -> Callable:
    def edit(ds):
        groups = ds.get("PerFrameFunctionalGroupsSequence")
        if groups:
            edit_item(groups)
    return edit


def _first_item(sequence: str, keyword: str, value) -> Callable:
    def edit(ds):
        items = ds.get(sequence)
        if items:
            if value is None:
                if keyword in items[0]:
                    delattr(items[0], keyword)
            else:
                setattr(items[0], keyword, value)
    return edit


def _contour_data_odd(ds):
    for item in ds.get("ROIContourSequence", []):
        for contour in item.get("ContourSequence", []):
            contour.ContourData = list(contour.ContourData)[:-1]


#: name -> edit of a pydicom dataset (applied to images and ground-truth objects alike).
HEADER_EDITS: Dict[str, Callable] = {
    "rows+1": lambda ds: setattr(ds, "Rows", int(ds.Rows) + 1) if "Rows" in ds else None,
    "rows-1": lambda ds: setattr(ds, "Rows", max(int(ds.Rows) - 1, 1)) if "Rows" in ds else None,
    "rows=0": _set("Rows", 0),
    "columns=1": _set("Columns", 1),
    "columns+1": lambda ds: setattr(ds, "Columns", int(ds.Columns) + 1) if "Columns" in ds else None,
    "bits-allocated=12": _set("BitsAllocated", 12),
    "bits-allocated=0": _set("BitsAllocated", 0),
    "bits-allocated=8": _set("BitsAllocated", 8),
    "bits-stored=40": _set("BitsStored", 40),
    "samples=3": _set("SamplesPerPixel", 3),
    "photometric=YBR_FOO": _set("PhotometricInterpretation", "YBR_FOO"),
    "photometric=RGB": _set("PhotometricInterpretation", "RGB"),
    "pixel-representation=2": _set("PixelRepresentation", 2),
    "pixel-data-removed": _set("PixelData", None),
    "frames=0": _set("NumberOfFrames", "0"),
    "frames=1A": _set("NumberOfFrames", "1A"),
    "frames+1": lambda ds: setattr(ds, "NumberOfFrames", int(ds.get("NumberOfFrames", 1) or 1) + 1),
    "frames-1": lambda ds: setattr(ds, "NumberOfFrames", max(int(ds.get("NumberOfFrames", 1) or 1) - 1, 1)),
    "frames=2000000000": _set("NumberOfFrames", "2000000000"),
    "rescale-slope=NaN": _set("RescaleSlope", "NaN"),
    "rescale-slope=inf": _set("RescaleSlope", "inf"),
    "rescale-slope=0": _set("RescaleSlope", "0"),
    "rescale-slope=abc": _set("RescaleSlope", "abc"),
    "rescale-intercept=NaN": _set("RescaleIntercept", "NaN"),
    "window-width=NaN": _set("WindowWidth", "NaN"),
    "window-width=0": _set("WindowWidth", "0"),
    "window-width=0.5": _set("WindowWidth", "0.5"),
    "window-center=abc": _set("WindowCenter", "abc"),
    "position=abc": _set("ImagePositionPatient", ["a", "b", "c"]),
    "orientation=zeros": _set("ImageOrientationPatient", [0, 0, 0, 0, 0, 0]),
    "pixel-spacing=0": _set("PixelSpacing", [0, 0]),
    "pixel-spacing=NaN": _set("PixelSpacing", ["NaN", "1"]),
    "spacing-between-slices=-2": _set("SpacingBetweenSlices", "-2"),
    "magnification=0": _set("EstimatedRadiographicMagnificationFactor", "0"),
    "per-frame-item-removed": _per_frame(lambda groups: groups.pop()),
    "segments-emptied": lambda ds: setattr(ds, "SegmentSequence", []) if "SegmentSequence" in ds else None,
    "segment-number=0": _first_item("SegmentSequence", "SegmentNumber", 0),
    "frame-segment=99": _per_frame(lambda groups: setattr(
        groups[0].SegmentIdentificationSequence[0], "ReferencedSegmentNumber", 99)
        if "SegmentIdentificationSequence" in groups[0] else None),
    "frame-position-removed": _per_frame(lambda groups: delattr(groups[0], "PlanePositionSequence")
                                         if "PlanePositionSequence" in groups[0] else None),
    "roi-number-removed": _first_item("StructureSetROISequence", "ROINumber", None),
    "contour-data-odd": _contour_data_odd,
}


def _write(ds) -> Optional[bytes]:
    """``ds`` as Part 10 bytes, values written as they are (None when pydicom cannot write it)."""
    buffer = io.BytesIO()
    old = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(buffer, enforce_file_format=False)
    except Exception:  # noqa: BLE001 - some edits cannot be encoded; such a mutant is skipped
        return None
    finally:
        config.settings.writing_validation_mode = old
    return buffer.getvalue()


def mutants(path: Path) -> Iterator[Tuple[str, bytes]]:
    """``(name, bytes)`` of every mutant of the file at ``path`` (deterministic)."""
    data = Path(path).read_bytes()
    for keep in TRUNCATIONS:
        yield f"truncated-{keep:g}", data[: max(int(len(data) * keep), 1)]
    rng = np.random.default_rng(zlib.crc32(Path(path).name.encode()))
    for index, position in enumerate(rng.integers(0, len(data), FLIPS_PER_FILE)):
        flipped = bytearray(data)
        flipped[int(position)] ^= 0xFF
        yield f"flip-{index}@{int(position)}", bytes(flipped)
    for name, syntax in SYNTAX_EDITS.items():
        mutant = with_transfer_syntax(data, syntax)
        if mutant is not None and mutant != data:
            yield name, mutant
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            original = pydicom.dcmread(io.BytesIO(data), force=True)
            original.PixelData if "PixelData" in original else None  # noqa: B018 - load it now
    except Exception:  # noqa: BLE001 - not DICOM: only byte-level mutants
        return
    for name, edit in HEADER_EDITS.items():
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                edit(ds)
        except Exception:  # noqa: BLE001 - an edit that does not apply to this object
            continue
        written = _write(ds)
        if written is not None and written != data:
            yield name, written


def _modality(data: bytes) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True).get("Modality", ""))
    except Exception:  # noqa: BLE001
        return ""


def source_files(limit_kb: float = 64) -> List[Path]:
    """The pydicom test files (pydicom.data + pydicom-data) of at most ``limit_kb``, and the seeds."""
    from pydicom.data import get_testdata_files

    files = [Path(f) for f in get_testdata_files() if "dicomdirtests" not in f]
    files = [f for f in files if f.suffix in (".dcm", "") and f.stat().st_size <= limit_kb * 1024]
    return sorted(set(files), key=lambda f: f.name) + sorted((HERE / "corpus").glob("*.dcm"))


class ReadTimeout(BaseException):
    """A read that took longer than the sweep's limit (a hang is a finding too)."""


def _on_alarm(signum, frame):
    raise ReadTimeout()


def classify(read: Callable, check: Callable, seconds: float = 0) -> Tuple[str, str]:
    """``("ok" | "InputError" | "finding", detail)`` of one read (see ``fuzz_readers.py``);
    with ``seconds`` > 0 (Unix), a read still running after that long is a finding."""
    import signal

    from SaliencyTrustLib.io import InputError

    if seconds > 0:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = read()
    except ReadTimeout:
        return "finding", f"still reading after {seconds:g} s"
    except InputError as error:
        if getattr(error, "unexpected", False):
            return "finding", f"unexpected: {error.reason[:160]}"
        return "InputError", error.reason
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001 - every other type is a finding
        frame = traceback.extract_tb(error.__traceback__)[-1]
        return "finding", f"{type(error).__name__} @ {Path(frame.filename).name}:{frame.lineno}: {str(error)[:120]}"
    finally:
        if seconds > 0:
            signal.setitimer(signal.ITIMER_REAL, 0)
    problem = check(result)
    return ("finding", problem) if problem else ("ok", "")


def run(sources: List[Path], workdir: Path, seconds: float = 0) -> Dict[str, object]:
    """Read every mutant of ``sources`` (each read limited to ``seconds`` when > 0); returns the
    outcome counts and the findings."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from contract import check_image, check_mask

    from SaliencyTrustLib.io import read_ground_truth, read_image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        references = [read_image(HERE / "reference" / "cr.dcm"), read_image(HERE / "reference" / "ct_enhanced.dcm")]
    counts: Dict[str, int] = collections.Counter()
    findings: List[str] = []
    workdir.mkdir(parents=True, exist_ok=True)
    for source in sources:
        for name, data in mutants(source):
            path = workdir / f"{source.stem}.{name}.dcm"
            path.write_bytes(data)
            if _modality(data) in GROUND_TRUTH_MODALITIES:
                for reference in references:
                    outcome, detail = classify(lambda: read_ground_truth(path, reference),
                                               lambda mask: check_mask(mask, reference), seconds)
                    counts[outcome] += 1
                    if outcome == "finding":
                        findings.append(f"{source.name} {name} (ground truth): {detail}")
            else:
                outcome, detail = classify(lambda: read_image(path), check_image, seconds)
                counts[outcome] += 1
                if outcome == "finding":
                    findings.append(f"{source.name} {name}: {detail}")
            path.unlink()
    return {"sources": len(sources), "counts": dict(counts), "findings": findings}


def main() -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit-kb", type=float, default=64)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--timeout", type=float, default=30,
                        help="seconds one read may take before it counts as a finding (a hang)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mutants-") as workdir:
        result = run(source_files(args.limit_kb), Path(workdir), args.timeout)
    print(json.dumps({k: v for k, v in result.items() if k != "findings"}))
    for finding in result["findings"]:
        print("FINDING", finding)
    if args.report:
        args.report.write_text(json.dumps(result, indent=1) + "\n")
    return 1 if result["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())

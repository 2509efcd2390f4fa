"""Is a DICOM dataset usable? The one check every dataset passes at the readers' entry.

:func:`SaliencyTrustLib.io.dicom_read.read_dataset` calls, in order:

1. :func:`parse_elements`: every element of the file meta group and of the data set, in nested
   sequences too, is parsed once, so a damaged element (unknown VR, a value whose length does not
   fit its VR, bytes that are not text in the character set) is found here rather than wherever it
   would be read first. A damaged *private* element, or a damaged meta element other than the
   Transfer Syntax UID, is dropped with a warning (nothing reads it); a damaged standard element
   of the data set is an error.
2. :func:`check_transfer_syntax`: the Transfer Syntax UID is one known UID; a missing one is taken
   from how the file parsed when the pixel data is native; compressed pixel data must be
   encapsulated and native pixel data must not be.
3. :func:`check_pixel_module` (files read with their pixel data): the Image Pixel attributes are
   present and in range, the photometric interpretation agrees with the samples per pixel, the
   frame count agrees with the per-frame functional groups, the decoded size is under
   :data:`MAX_DECODED_BYTES`, and native pixel data holds exactly the bytes the header describes
   (a wrong ``Rows``/``Columns``/``NumberOfFrames``/``BitsAllocated`` would otherwise be read as a
   different, silently wrong image).

:func:`number` and :func:`numbers` read numeric attributes for the readers: a value that is not
a finite number is an :class:`InputError` naming the attribute, never a ``ValueError`` deep inside.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Callable, List, NamedTuple, Optional, Union

from .errors import InputError, InputWarning

PathLike = Union[str, os.PathLike]

#: Largest decoded pixel array (bytes) a header may declare; larger is refused before decoding
#: (a corrupt header, or a file to split first). 4 GiB holds a 2048-slice 1024x1024 16-bit series.
MAX_DECODED_BYTES = 4 * 1024 ** 3

#: Photometric interpretations pydicom decodes, with their samples per pixel.
PHOTOMETRIC_SAMPLES = {"MONOCHROME1": 1, "MONOCHROME2": 1, "PALETTE COLOR": 1, "RGB": 3,
                       "YBR_FULL": 3, "YBR_FULL_422": 3, "YBR_PARTIAL_420": 3, "YBR_ICT": 3,
                       "YBR_RCT": 3}
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_REQUIRED = object()
_RE_EXPORT = "Re-export or re-transfer the file from its source (PACS, scanner)."


class PixelHeader(NamedTuple):
    """The checked Image Pixel attributes of a dataset (see :func:`check_pixel_module`)."""

    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    keyword: str             # PixelData, FloatPixelData or DoubleFloatPixelData
    encapsulated: bool

    @property
    def decoded_bytes(self) -> int:
        """Size of the decoded array (at least one byte per sample)."""
        return self.rows * self.columns * self.frames * self.samples * max(self.bits_allocated // 8, 1)


# ------------------------------------------------------------------------------------- elements
def _tag_name(element_or_tag) -> str:
    from pydicom.datadict import keyword_for_tag
    from pydicom.tag import Tag

    tag = Tag(getattr(element_or_tag, "tag", element_or_tag))
    keyword = keyword_for_tag(tag)
    return f"{tag}{' ' + keyword if keyword else ''}"


def parse_elements(dataset, path: Optional[PathLike], dropped: Optional[List[str]] = None,
                   _where: str = "", file_meta: bool = False) -> None:
    """Parse every element of ``dataset`` (sequences recursively) once.

    Damaged private elements are deleted; a sentence for each is appended to ``dropped`` (the
    caller warns: pydicom's own warnings are usually silenced around this call). With
    ``file_meta=True`` (the file meta group) every damaged element but the Transfer Syntax UID
    is deleted the same way: the readers use nothing else of that group.

    Raises:
        InputError: a standard element cannot be parsed (the tag and pydicom's reason named).
    """
    for tag in list(dataset.keys()):
        try:
            element = dataset[tag]
            value = element.value
        except Exception as error:  # noqa: BLE001 - pydicom parses the file's bytes here and
            # raises many types (NotImplementedError for an unknown VR, BytesLengthException,
            # UnicodeDecodeError, struct.error ...); each becomes one error naming the element.
            name = f"{_where}{_tag_name(tag)}"
            reason = f"element {name} cannot be parsed ({type(error).__name__}: {error})"
            private = (int(tag) >> 16) % 2 == 1
            if private or (file_meta and int(tag) != 0x00020010):
                if dropped is not None:
                    dropped.append(f"{path}: {reason}; this {'private ' if private else ''}element was "
                                   "ignored.")
                del dataset[tag]
                continue
            raise InputError(path, reason + ".", _RE_EXPORT) from error
        if element.VR == "SQ" and value is not None:
            for index, item in enumerate(value):
                parse_elements(item, path, dropped, f"{_where}{_tag_name(tag)}[{index}] > ")


# ------------------------------------------------------------------------------------- numbers
def _scalar(raw: Any) -> Any:
    """An element value as text or number: bytes (an element read as UN) decoded."""
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).decode("latin-1").strip("\x00 ")
    return raw


def _convert(raw: Any, kind: Callable) -> Optional[Union[int, float]]:
    """``raw`` as ``kind`` (int or float), or None when it is not a finite number."""
    text = _scalar(raw)
    try:
        value = float(text if not isinstance(text, str) else text.strip())
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(value):
        return None
    if kind is int:
        if not value.is_integer():
            return None
        return int(value)
    return value


def numbers(item, keyword: str, path: Optional[PathLike], kind: Callable = float,
            count: Optional[int] = None, default: Any = None, where: str = "") -> Any:
    """All values of a numeric attribute as a list of ``kind``.

    Args:
        item: the dataset (or sequence item) holding it.
        keyword: the attribute.
        path: the file, named in the error.
        kind: ``int`` or ``float``.
        count: the number of values required (None: any, at least one).
        default: returned when the attribute is absent or empty.
        where: text naming ``item`` in the error (e.g. ``"frame 3 "``).

    Raises:
        InputError: a value is not a finite number, or the count is wrong.
    """
    from pydicom.multival import MultiValue

    if item is None or keyword not in item:
        return default
    raw = item[keyword].value
    if raw is None or raw == "" or (isinstance(raw, (list, tuple, MultiValue)) and len(raw) == 0):
        return default
    if isinstance(raw, (bytes, bytearray)):
        raw = _scalar(raw).split("\\")
    values = list(raw) if isinstance(raw, (list, tuple, MultiValue)) else [raw]
    converted = [_convert(v, kind) for v in values]
    if any(v is None for v in converted) or (count is not None and len(converted) != count):
        noun = "integer" if kind is int else "number"
        expected = (f"{count} finite {noun}s" if count and count > 1 else
                    f"finite {noun}s" if len(converted) > 1 else f"a finite {noun}")
        shown = repr(raw if len(str(raw)) <= 80 else str(raw)[:80] + "...")
        raise InputError(path, f"{where}{keyword} {shown} is not {expected}.",
                         f"Correct {keyword} in the file (e.g. dcmodify -m), or re-export it from "
                         "its source.")
    return converted


def number(item, keyword: str, path: Optional[PathLike], kind: Callable = float,
           default: Any = _REQUIRED, where: str = "", first: bool = False) -> Any:
    """One numeric attribute as ``kind``; ``first=True`` takes the first of several values
    (``WindowCenter`` may hold one per window). Absent: ``default``, or an error when none given.

    Raises:
        InputError: missing (no default), several values (without ``first``), or not finite.
    """
    values = numbers(item, keyword, path, kind, default=None, where=where)
    if values is None:
        if default is _REQUIRED:
            raise InputError(path, f"{where}lacks {keyword}, which an image must have.", _RE_EXPORT)
        return default
    if len(values) > 1 and not first:
        raise InputError(path, f"{where}{keyword} holds {len(values)} values, one expected.",
                         f"Correct {keyword} in the file, or re-export it from its source.")
    return values[0]


# ------------------------------------------------------------------------------- transfer syntax
def check_transfer_syntax(dataset, path: Optional[PathLike], messages: Optional[List[str]] = None) -> None:
    """Make ``dataset.file_meta.TransferSyntaxUID`` one known UID that matches the pixel data.

    A missing syntax is set from how pydicom parsed the file (implicit / explicit VR, little /
    big endian) when the pixel data is native, with a warning.

    Raises:
        InputError: a syntax that is not one UID pydicom knows, compressed pixel data with no
            syntax, or a syntax that contradicts the pixel data's encoding.
    """
    from pydicom.dataelem import DataElement
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import (UID, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                             ImplicitVRLittleEndian)

    meta = getattr(dataset, "file_meta", None)
    raw = meta.get("TransferSyntaxUID") if meta is not None else None
    keyword = next((k for k in PIXEL_KEYWORDS if k in dataset), None)
    encapsulated = keyword == "PixelData" and bool(dataset["PixelData"].is_undefined_length)
    if raw is None or str(raw).strip("\x00 ") == "":
        if keyword is None:
            return
        if encapsulated:
            raise InputError(path, "has compressed (encapsulated) pixel data but no Transfer "
                             "Syntax UID saying how it is compressed.", _RE_EXPORT)
        implicit, little = getattr(dataset, "original_encoding", (None, None))
        if implicit is None:
            raise InputError(path, "has no Transfer Syntax UID and its encoding is unknown.", _RE_EXPORT)
        syntax = (ImplicitVRLittleEndian if implicit else
                  ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        if meta is None:
            dataset.file_meta = meta = FileMetaDataset()
        meta["TransferSyntaxUID"] = DataElement(0x00020010, "UI", syntax)
        text = (f"{path}: has no Transfer Syntax UID; read as {syntax.name}, the encoding its "
                "elements were parsed with.")
        if messages is not None:
            messages.append(text)
        warnings.warn(text, InputWarning, stacklevel=3)
        return
    if isinstance(raw, (bytes, bytearray)):   # the element was read with VR UN
        text = _scalar(raw)
    else:   # several values (a backslash in the UID) are not one UID
        text = raw.strip("\x00 ") if isinstance(raw, str) else None
    if text is None or not UID(text).is_transfer_syntax:
        raise InputError(path, f"declares the transfer syntax {raw!r}, which is not a transfer "
                         "syntax pydicom knows (a private, mistyped or damaged UID): its pixel data "
                         "cannot be decoded.",
                         "Convert the file to a standard syntax with the tool that wrote it, or "
                         "re-export it uncompressed (Explicit VR Little Endian).")
    syntax = UID(text)
    # A new element: the value is set whatever VR the file gave it (a VR of DS would not take it).
    meta["TransferSyntaxUID"] = DataElement(0x00020010, "UI", syntax)
    if keyword == "PixelData" and syntax.is_encapsulated != encapsulated:
        raise InputError(path, f"declares the transfer syntax {syntax} ({syntax.name}) but its pixel "
                         f"data is {'compressed (encapsulated)' if encapsulated else 'not compressed'}: "
                         "the file is damaged or was rewritten wrongly.", _RE_EXPORT)


# ------------------------------------------------------------------------------------ pixels
def expected_native_length(header: PixelHeader) -> int:
    """Bytes of native pixel data for ``header`` (1-bit data packed; YBR_FULL_422 subsampled),
    without the padding byte that makes an odd length even."""
    values = header.rows * header.columns * header.frames * header.samples
    if header.bits_allocated == 1:
        return (values + 7) // 8
    length = values * (header.bits_allocated // 8)
    if header.photometric == "YBR_FULL_422":   # two samples per pixel stored (PS3.5 8.2.1, C.7.6.3)
        length = length // 3 * 2
    return length


def _count_fragments(data: bytes, limit: int, path: Optional[PathLike]) -> int:
    """Fragments of encapsulated pixel data (basic offset table excluded), counting up to ``limit``.

    Raises:
        InputError: the item structure is broken (pydicom's reason named).
    """
    from pydicom.encaps import generate_fragments

    count = 0
    try:
        for index, _ in enumerate(generate_fragments(data)):
            if index == 0:       # the first item is the basic offset table
                continue
            count += 1
            if count >= limit:
                break
    except ValueError as error:
        raise InputError(path, f"has compressed pixel data whose items are broken ({error}).",
                         _RE_EXPORT) from error
    return count


def check_pixel_module(dataset, path: Optional[PathLike],
                       messages: Optional[List[str]] = None) -> Optional[PixelHeader]:
    """Check the Image Pixel attributes against each other and against the pixel data.

    Native pixel data must hold exactly the bytes the header describes, plus the pad byte of an
    odd length. Longer data is refused (a wrong Rows, Columns, NumberOfFrames or BitsAllocated
    would read as a different image) except trailing zeros no longer than one row, which some
    writers append: they are ignored with a warning (text appended to ``messages``).

    Returns:
        The checked :class:`PixelHeader`, or None when the dataset holds no pixel data.

    Raises:
        InputError: a missing / out-of-range attribute, a photometric interpretation that does not
            match the samples per pixel, a frame count that disagrees with the per-frame
            functional groups or the compressed fragments, a decoded size over
            :data:`MAX_DECODED_BYTES`, or native pixel data longer or shorter than the header says.
    """
    keyword = next((k for k in PIXEL_KEYWORDS if k in dataset), None)
    if keyword is None:
        return None
    syntax = dataset.file_meta.TransferSyntaxUID
    encapsulated = keyword == "PixelData" and syntax.is_encapsulated

    def bad(reason: str) -> InputError:
        return InputError(path, reason, _RE_EXPORT)

    rows = number(dataset, "Rows", path, int)
    columns = number(dataset, "Columns", path, int)
    bits_allocated = number(dataset, "BitsAllocated", path, int)
    is_float = keyword != "PixelData"
    bits_stored = bits_allocated if is_float else number(dataset, "BitsStored", path, int)
    samples = number(dataset, "SamplesPerPixel", path, int)
    representation = 0 if is_float else number(dataset, "PixelRepresentation", path, int)
    frames = number(dataset, "NumberOfFrames", path, int, default=1)
    photometric = str(dataset.get("PhotometricInterpretation", "") or "").strip()
    if not 1 <= rows <= 65535 or not 1 <= columns <= 65535:
        raise bad(f"declares a {rows} x {columns} (Rows x Columns) image; each must be 1..65535.")
    if bits_allocated not in ((32,) if keyword == "FloatPixelData" else (64,) if is_float
                              else (1, 8, 16, 32, 64)):
        raise bad(f"declares BitsAllocated {bits_allocated}, not one of 1, 8, 16, 32, 64 (32 for "
                  "float, 64 for double float pixel data).")
    if not 1 <= bits_stored <= bits_allocated:
        raise bad(f"declares BitsStored {bits_stored} with BitsAllocated {bits_allocated}; it must "
                  "be 1..BitsAllocated.")
    if representation not in (0, 1):
        raise bad(f"declares PixelRepresentation {representation}; it must be 0 (unsigned) or 1 (signed).")
    if photometric not in PHOTOMETRIC_SAMPLES:
        raise bad(f"declares PhotometricInterpretation {photometric!r}, not one of "
                  f"{', '.join(PHOTOMETRIC_SAMPLES)}.")
    if samples != PHOTOMETRIC_SAMPLES[photometric]:
        raise bad(f"declares {samples} sample(s) per pixel for {photometric}, which has "
                  f"{PHOTOMETRIC_SAMPLES[photometric]}.")
    if samples > 1 and number(dataset, "PlanarConfiguration", path, int, default=0) not in (0, 1):
        raise bad(f"declares PlanarConfiguration {dataset.PlanarConfiguration!r}; it must be 0 or 1.")
    if frames < 1:
        raise bad(f"declares NumberOfFrames {frames}; it must be at least 1.")
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) != frames:
        raise bad(f"declares NumberOfFrames {frames} but describes {len(per_frame)} frames in its "
                  "PerFrameFunctionalGroupsSequence.")
    header = PixelHeader(rows, columns, frames, samples, bits_allocated, bits_stored,
                         representation, photometric, keyword, encapsulated)
    if header.decoded_bytes > MAX_DECODED_BYTES:
        raise InputError(path, f"declares {frames} frame(s) of {rows} x {columns} x {samples} "
                         f"samples at {bits_allocated} bits: {header.decoded_bytes / 1024 ** 3:.1f} "
                         f"GiB once decoded, over the {MAX_DECODED_BYTES / 1024 ** 3:.1f} GiB limit "
                         "(a corrupt header, or a very large object).",
                         "If the object really is this large, crop or split it, or raise "
                         "SaliencyTrustLib.io.dicom_checks.MAX_DECODED_BYTES.")
    data = dataset[keyword].value
    if data is None or len(data) == 0:
        raise bad("has an empty pixel data element.")
    if encapsulated:
        fragments = _count_fragments(data, frames, path)
        if fragments < frames:
            raise bad(f"declares {frames} frame(s) but its compressed pixel data holds only "
                      f"{fragments} fragment(s) (each frame needs at least one).")
        return header
    expected = expected_native_length(header)
    actual = len(data)
    if actual < expected:
        raise bad(f"is truncated: its pixel data holds {actual} bytes but {rows} x {columns} x "
                  f"{frames} frame(s) of {samples} sample(s) at {bits_allocated} bits need {expected}.")
    excess = actual - expected - (expected % 2)
    row_bytes = expected // (rows * frames) if header.bits_allocated > 1 else 0
    if 0 < excess <= row_bytes and not any(data[expected:]):
        text = (f"{path}: its pixel data ends with {actual - expected} zero bytes past the "
                f"{expected} its header describes; they were ignored as padding.")
        if messages is not None:
            messages.append(text)
        warnings.warn(text, InputWarning, stacklevel=3)
    elif excess > 0:
        raise InputError(path, f"holds {actual} bytes of pixel data where its header ({rows} x "
                         f"{columns} x {frames} frame(s), {samples} sample(s) at {bits_allocated} "
                         f"bits, {photometric}) describes {expected}: Rows, Columns, NumberOfFrames "
                         "or BitsAllocated is wrong, and reading it would give a different, wrong "
                         "image.", "Correct the header to match the pixel data, or re-export the "
                         "file from its source.")
    return header


def check_lut(item, name: str, path: Optional[PathLike]) -> None:
    """A Modality / VOI LUT Sequence item: 3-value LUTDescriptor and LUTData of that many entries.

    Raises:
        InputError: a descriptor or table that a LUT cannot be applied with.
    """
    descriptor = numbers(item, "LUTDescriptor", path, int, where=f"{name} ")
    if descriptor is None or len(descriptor) != 3:
        raise InputError(path, f"{name} has no 3-value LUTDescriptor.", _RE_EXPORT)
    entries = descriptor[0] or 65536
    if not 8 <= descriptor[2] <= 16:
        raise InputError(path, f"{name} LUTDescriptor declares {descriptor[2]}-bit entries; 8..16 "
                         "expected.", _RE_EXPORT)
    data = item.get("LUTData")
    length = 0 if data is None else (len(data) if not isinstance(data, (bytes, bytearray))
                                     else len(data) // (2 if descriptor[2] > 8 else 1))
    if isinstance(data, (int, float)):
        length = 1
    if length < entries:
        raise InputError(path, f"{name} LUTData holds {length} entries where its LUTDescriptor "
                         f"declares {entries}.", _RE_EXPORT)


"""The bundle's preprocessing, as MONAI transforms: one definition used by every bundle config
(train / evaluate / inference / trust), the cohort runner and the Slicer Logic.

Pipeline (dictionary transforms, keys ``image`` and optionally ground-truth ``mask`` keys):

1. :class:`monai.transforms.LoadImaged` with the **ITK reader** - a DICOM series folder, a DICOM
   file, NIfTI, NRRD (ITK gives LPS geometry; MONAI turns the affine to RAS);
2. :class:`monai.transforms.EnsureChannelFirstd` - ``(1, I, J[, K])``;
3. :class:`EnsureSpatialDimsd` - drops the singleton slice axis of a radiograph (``(1, I, J, 1)`` ->
   ``(1, I, J)``); a real volume given to a 2D network is refused here with a clear error;
4. :class:`monai.transforms.Orientationd` to ``"PL"`` (``"PLS"`` in 3D): the first array axis runs to
   posterior (image rows, ``J``, for an axial / radiograph direction), the second to the patient's
   left (columns, ``I``): the network sees ``(rows, columns)`` exactly as
   :class:`SaliencyTrustLib.image.ImageVolume` ``array[k]`` and a viewer show them;
5. :class:`monai.transforms.ScaleIntensityd` to [0, 1] (per-image min-max; image keys only);
6. :class:`monai.transforms.Resized` to ``224 x 224`` (bilinear for images, nearest for masks).

Every step is invertible (MONAI records them in ``applied_operations``), so a saliency map on the
network grid goes back onto the input image's grid with :func:`invert_map` (inverse resize,
inverse orientation, un-squeeze), carrying the input's affine for writing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Hashable, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.utils import to_affine_nd
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    Orientationd,
    Resized,
    ScaleIntensityd,
)
from monai.transforms.inverse import InvertibleTransform
from monai.utils import TraceKeys

#: Network input size of the 2D bundle models, pixels ``(rows, columns)``.
IMAGE_SIZE = (224, 224)
#: Target orientation (MONAI RAS labels): axis 0 -> posterior (rows), axis 1 -> left (columns).
AXCODES = "PLS"
#: The ITK reader handles DICOM series folders, DICOM files, NIfTI and NRRD alike.
READER = "ITKReader"


def _source_name(img: Any) -> str:
    meta = getattr(img, "meta", {}) or {}
    return str(meta.get("filename_or_obj", "<in-memory image>"))


class EnsureSpatialDimsd(MapTransform, InvertibleTransform):
    """Drop trailing singleton spatial axes so an image has exactly ``spatial_dims`` of them.

    A radiograph read by ITK is ``(C, J, I, 1)``; for a 2D network it becomes ``(C, J, I)`` and its
    4x4 affine the matching 3x3 one. The original affine is recorded, and :meth:`inverse` restores
    both the axis and the affine, so :func:`invert_map` can go back to the input grid.

    Args:
        keys: keys of the channel-first images.
        spatial_dims: spatial axes the network expects (2 or 3).
        allow_missing_keys: as in :class:`monai.transforms.MapTransform`.

    Raises:
        ValueError: (when called) an image has more non-singleton spatial axes than
            ``spatial_dims`` (e.g. a CT volume given to a 2D network), or fewer than ``spatial_dims``
            axes; the message names the file and the fix.
    """

    def __init__(self, keys: KeysCollection, spatial_dims: int = 2, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if spatial_dims not in (2, 3):
            raise ValueError(f"EnsureSpatialDimsd: spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        self.spatial_dims = int(spatial_dims)

    def _squeeze(self, img: torch.Tensor) -> tuple:
        spatial = tuple(img.shape[1:])
        if len(spatial) < self.spatial_dims:
            raise ValueError(
                f"{_source_name(img)}: image has {len(spatial)} spatial axes {spatial} but the network is "
                f"{self.spatial_dims}D; give a {self.spatial_dims}D image (channel-first, e.g. (1, H, W)).")
        extra = spatial[self.spatial_dims:]
        if any(int(s) != 1 for s in extra):
            raise ValueError(
                f"{_source_name(img)}: image of shape {spatial} is {len(spatial)}D with more than "
                f"{self.spatial_dims} non-singleton axes, but the network is {self.spatial_dims}D "
                f"(spatial_dims={self.spatial_dims}). Give a single-slice image (a radiograph), or use a "
                f"{len(spatial)}D network (build_classifier(..., spatial_dims={len(spatial)})) with a "
                f"{len(spatial)}D bundle configuration.")
        return img.reshape(img.shape[: 1 + self.spatial_dims]), len(extra)

    def __call__(self, data: Mapping[Hashable, Any]) -> Dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if not isinstance(img, torch.Tensor):
                img = torch.as_tensor(np.asarray(img))
            squeezed, removed = self._squeeze(img)
            orig_affine = None
            if isinstance(img, MetaTensor):
                orig_affine = img.affine.clone()
                squeezed = MetaTensor(squeezed.as_tensor(), meta=img.meta,
                                      applied_operations=list(img.applied_operations))
                squeezed.affine = to_affine_nd(self.spatial_dims, orig_affine)
            d[key] = squeezed
            self.push_transform(d, key, extra_info={
                "removed": removed,
                "affine": None if orig_affine is None else orig_affine.tolist()})
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> Dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            transform = self.get_most_recent_transform(d, key)
            info = transform[TraceKeys.EXTRA_INFO]
            img = d[key]
            restored = img.reshape(tuple(img.shape) + (1,) * int(info["removed"]))
            if isinstance(img, MetaTensor):
                restored = MetaTensor(restored.as_tensor(), meta=img.meta,
                                      applied_operations=list(img.applied_operations))
                if info["affine"] is not None:
                    restored.affine = torch.as_tensor(info["affine"], dtype=torch.float64)
            d[key] = restored
            self.pop_transform(d, key)
        return d


def scale_intensity(array: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """Per-image min-max scaling to [0, 1], as :class:`monai.transforms.ScaleIntensityd` does in
    the pipeline (a constant image becomes all zeros). Any shape; returns float32 numpy.

    Raises:
        ValueError: the image holds NaN or infinite values.
    """
    values = np.asarray(array.detach().cpu() if isinstance(array, torch.Tensor) else array, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    if not np.isfinite([low, high]).all():
        raise ValueError("scale_intensity: the image holds NaN or infinite values; fix the source image.")
    if high <= low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def preprocessing_transforms(keys: Sequence[str] = ("image",), mask_keys: Sequence[str] = (),
                             spatial_dims: int = 2, image_size: Sequence[int] = IMAGE_SIZE,
                             load: bool = True, reader: str = READER, axcodes: str = AXCODES) -> List[Any]:
    """The bundle's deterministic preprocessing as a list of MONAI dictionary transforms.

    Args:
        keys: image keys (intensity-scaled to [0, 1], resized bilinearly).
        mask_keys: ground-truth keys (label maps: not scaled, resized with nearest neighbour,
            missing keys allowed so that negatives without a mask pass).
        spatial_dims: spatial axes of the network input (2: radiographs).
        image_size: network input size, ``(rows, columns)`` for 2D.
        load: start with ``LoadImaged`` + ``EnsureChannelFirstd`` (False when the dictionary
            already holds channel-first MetaTensors, see :func:`volume_to_data`).
        reader: MONAI image reader (``"ITKReader"``: DICOM folder/file, NIfTI, NRRD).
        axcodes: target orientation (see the module docstring).

    Returns:
        The transforms, to wrap in :class:`monai.transforms.Compose`.
    """
    keys, mask_keys = list(keys), list(mask_keys)
    all_keys = keys + mask_keys
    if len(image_size) != spatial_dims:
        raise ValueError(f"image_size {tuple(image_size)} must have spatial_dims={spatial_dims} values.")
    transforms: List[Any] = []
    if load:
        transforms += [
            LoadImaged(keys=all_keys, reader=reader, image_only=True, allow_missing_keys=True),
            EnsureChannelFirstd(keys=all_keys, allow_missing_keys=True),
        ]
    transforms += [
        # squeeze first (the slice axis K is last in ITK's (I, J, K) order), then orient the plane
        EnsureSpatialDimsd(keys=all_keys, spatial_dims=spatial_dims, allow_missing_keys=True),
        Orientationd(keys=all_keys, axcodes=axcodes[:spatial_dims], allow_missing_keys=True),
        ScaleIntensityd(keys=keys, minv=0.0, maxv=1.0),
        Resized(keys=keys, spatial_size=tuple(image_size), mode="bilinear", align_corners=False),
    ]
    if mask_keys:
        transforms.append(Resized(keys=mask_keys, spatial_size=tuple(image_size), mode="nearest",
                                  allow_missing_keys=True))
    transforms.append(EnsureTyped(keys=all_keys, dtype=torch.float32, allow_missing_keys=True))
    return transforms


def get_preprocessing(**kwargs: Any) -> Compose:
    """:func:`preprocessing_transforms` wrapped in a ``Compose`` (same arguments)."""
    return Compose(preprocessing_transforms(**kwargs))


def volume_to_data(volume: Any, key: str = "image") -> Dict[str, MetaTensor]:
    """An :class:`SaliencyTrustLib.image.ImageVolume` as the dictionary ``LoadImaged`` +
    ``EnsureChannelFirstd`` would give: ``{key: MetaTensor (1, I, J, K)}`` with the RAS affine.

    Run ``get_preprocessing(load=False)`` on it to get the network input of a volume already in
    memory (Slicer, DICOMweb), identical to reading the same image from disk.
    """
    array = np.asarray(volume.array, dtype=np.float32)          # (K, J, I)
    ijk = np.transpose(array, (2, 1, 0))[np.newaxis]          # (1, I, J, K)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine = lps_to_ras @ volume.ijk_to_lps()
    source = volume.metadata.get("source_path", "<in-memory image>") if hasattr(volume, "metadata") else "<in-memory image>"
    meta = {"filename_or_obj": str(source), "space": "RAS", "original_affine": affine.copy()}
    return {key: MetaTensor(torch.from_numpy(np.ascontiguousarray(ijk)), affine=torch.as_tensor(affine), meta=meta)}


def invert_map(saliency_map: Union[torch.Tensor, np.ndarray], preprocessed: torch.Tensor,
               preprocessing: Compose, key: str = "image") -> MetaTensor:
    """Take a map on the network grid back onto the input image's grid.

    Args:
        saliency_map: ``(*spatial)`` or ``(1, *spatial)`` on the network grid (e.g. 224 x 224).
        preprocessed: the network input this map explains: the MetaTensor the ``preprocessing``
            produced (one item, channel-first, carrying its ``applied_operations``), e.g. the
            ``image`` of a decollated batch.
        preprocessing: the ``Compose`` that produced ``preprocessed``.
        key: the dictionary key the image had.

    Returns:
        ``(1, I, J[, K])`` MetaTensor on the input grid with the input's affine (what ``SaveImaged``
        writes aligned with the input; bilinear inverse resize).
    """
    values = torch.as_tensor(np.asarray(saliency_map) if isinstance(saliency_map, np.ndarray) else saliency_map)
    values = values.detach().float().cpu()
    spatial = tuple(preprocessed.shape[1:])
    if tuple(values.shape) == spatial:
        values = values[None]
    if tuple(values.shape[1:]) != spatial:
        raise ValueError(f"invert_map: map of shape {tuple(values.shape)} does not match the network input "
                         f"{tuple(preprocessed.shape)}.")
    carrier = MetaTensor(values, meta=dict(preprocessed.meta), applied_operations=list(preprocessed.applied_operations))
    carrier.affine = preprocessed.affine.clone()
    with torch.no_grad():
        out = preprocessing.inverse({key: carrier})[key]
    return out


def ras_channel_first_to_kji(image: torch.Tensor) -> np.ndarray:
    """``(1, I, J[, K])`` (MONAI's ITK order) -> numpy ``(K, J, I)`` (the ImageVolume order)."""
    array = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image)[0]
    if array.ndim == 2:
        array = array[..., np.newaxis]
    return np.ascontiguousarray(np.transpose(array, (2, 1, 0)))


# ----------------------------------------------------------------------------------------------
# Datalists
# ----------------------------------------------------------------------------------------------

#: Keys of a datalist item that hold paths (relative to the datalist's folder unless absolute);
#: ``shortcut`` is the burned-in marker's mask of a ``saliency-trust synth --shortcut`` cohort.
PATH_KEYS = ("image", "mask", "dicom", "seg", "shortcut")


def _spatial_shape_on_disk(path: Path) -> Optional[tuple]:
    """Cheap header read: the spatial shape of an image file / DICOM folder, ``None`` if unknown."""
    try:
        if path.is_dir():
            files = [p for p in path.iterdir() if p.is_file()]
            if not files:
                return ()
            import pydicom

            ds = pydicom.dcmread(str(files[0]), stop_before_pixels=True, force=True)
            frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
            return (int(ds.Columns), int(ds.Rows), max(len(files), frames))
        name = path.name.lower()
        if name.endswith((".nii", ".nii.gz")):
            import nibabel

            return tuple(int(s) for s in nibabel.load(str(path)).header.get_data_shape())
    except Exception:  # header unreadable: the loader will report it
        return None
    return None


def check_image_dims(path: Union[str, os.PathLike], spatial_dims: int = 2) -> None:
    """Raise ``ValueError`` naming ``path`` when the image (header only) has more non-singleton
    spatial axes than ``spatial_dims``; unknown formats pass (the loader checks them later)."""
    shape = _spatial_shape_on_disk(Path(path))
    if shape is None:
        return
    spatial = [s for s in shape[:3] if int(s) != 1]
    if len(shape) > 3 and any(int(s) != 1 for s in shape[3:]):
        spatial += [s for s in shape[3:] if int(s) != 1]
    if len(spatial) > spatial_dims:
        raise ValueError(
            f"{path}: image of shape {tuple(shape)} has {len(spatial)} non-singleton axes but the network is "
            f"{spatial_dims}D (spatial_dims={spatial_dims}). Give single-slice images (radiographs), or train / "
            f"load a {len(spatial)}D network.")


def bundle_datalist(datalist: Union[str, os.PathLike, Mapping[str, Any]], section: str = "training",
                  base_dir: Union[str, os.PathLike, None] = None, image_key: str = "image",
                  require: Sequence[str] = (), spatial_dims: Optional[int] = 2, labels_only: Optional[int] = None,
                  limit: Optional[int] = None) -> List[Dict[str, Any]]:
    """Read one section of a MONAI datalist JSON, resolve its paths and check them all up front.

    The format (written by ``saliency-trust synth``; see the README to prepare RSNA / SIIM)::

        {"training": [{"image": "nifti/<id>.nii.gz", "label": 0|1, "mask": "masks/<id>.nii.gz",
                       "dicom": "dicom/<id>", "case_id": "<id>"}, ...],
         "validation": [...], "test": [...]}

    Args:
        datalist: path of the JSON file, or the dictionary itself.
        section: ``"training"``, ``"validation"`` or ``"test"``.
        base_dir: folder relative paths are resolved against (default: the JSON file's folder).
        image_key: which item key is the network's image: ``"image"`` (NIfTI) or ``"dicom"`` (the
            DICOM series folder); the chosen path is stored under ``"image"`` in the result and the
            NIfTI path, if any, under ``"image_nifti"``.
        require: further keys every item must have (e.g. ``("label",)``, ``("mask",)``).
        spatial_dims: check each image header for this dimensionality (``None``: skip).
        labels_only: keep only items with this label (e.g. 1 for the positives the study explains).
        limit: keep the first ``limit`` items (after ``labels_only``).

    Returns:
        The items as dictionaries with absolute paths.

    Raises:
        FileNotFoundError: the datalist or any referenced file is missing (all missing ones listed).
        ValueError: a section / key is missing, or an image has the wrong dimensionality.
    """
    if isinstance(datalist, Mapping):
        content, origin = dict(datalist), "<datalist dict>"
        root = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        path = Path(datalist)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: datalist not found. Create one with `saliency-trust synth --out DIR` "
                                    "(DIR/datalist.json) or write one as documented in MonaiBundle/docs/README.md.")
        content, origin = json.loads(path.read_text()), str(path)
        root = Path(base_dir) if base_dir is not None else path.parent
    if section not in content:
        raise ValueError(f"{origin}: no section {section!r}; it has {sorted(content)}.")
    items = []
    missing: List[str] = []
    for index, raw in enumerate(content[section]):
        item = dict(raw) if isinstance(raw, Mapping) else {"image": raw}
        for key in PATH_KEYS:
            if isinstance(item.get(key), str):
                resolved = Path(item[key]) if os.path.isabs(item[key]) else root / item[key]
                item[key] = str(resolved)
        if image_key != "image":
            if image_key not in item:
                raise ValueError(f"{origin}: {section}[{index}] has no {image_key!r} key (image_key={image_key!r}).")
            if "image" in item:
                item["image_nifti"] = item["image"]
            item["image"] = item[image_key]
        for key in ("image", *require):
            if key not in item:
                raise ValueError(f"{origin}: {section}[{index}] has no {key!r} key; every item needs it.")
        if labels_only is not None and int(item.get("label", -1)) != int(labels_only):
            continue
        items.append(item)
    if limit is not None:
        items = items[: int(limit)]
    for index, item in enumerate(items):
        for key in ("image", "mask"):
            if isinstance(item.get(key), str) and not os.path.exists(item[key]):
                missing.append(f"{key}={item[key]} (item {item.get('case_id', index)})")
    if missing:
        raise FileNotFoundError(f"{origin}: {len(missing)} file(s) of section {section!r} do not exist: "
                                + "; ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
                                + ". Fix the paths (relative to the datalist's folder) or regenerate the data.")
    if spatial_dims is not None:
        for item in items:
            check_image_dims(item["image"], spatial_dims)
    return items


def shard(items: Sequence[Any], rank: int = 0, world_size: int = 1) -> List[Any]:
    """Items ``rank, rank + world_size, ...``: the share of one process (no padding, no overlap)."""
    return list(items)[int(rank)::int(world_size)]


# ----------------------------------------------------------------------------------------------
# Post-processing: saliency maps as dictionary entries that Invertd / SaveImaged understand
# ----------------------------------------------------------------------------------------------

class SaliencyMapsd(MapTransform):
    """Compute saliency maps of one (decollated) item and store each as ``"<prefix><method>"``.

    Used in the bundle's ``inference.json`` post-processing: each map is a ``(1, *spatial)``
    MetaTensor that carries the image's metadata and ``applied_operations``, so
    ``Invertd(keys="saliency_gradcam", orig_keys="image", ...)`` takes it back onto the input grid
    and ``SaveImaged`` writes it aligned with the input.

    Args:
        keys: the image key (one), channel-first ``(C, *spatial)`` network input.
        network: the classifier (``(B, C, *spatial)`` -> ``(B, classes)`` logits).
        methods: ``{name: callable(model, images, target) -> (B, *spatial) maps}``, e.g.
            :class:`SaliencyTrustLib.saliency.SaliencyMethod` objects built in the config; a list
            of such objects is keyed by their ``name``.
        target: class to explain; ``None``: the predicted class (the study's choice).
        prefix: output key prefix.
        device: where to run (default: the network's device).
    """

    def __init__(self, keys: KeysCollection, network: torch.nn.Module, methods: Any, target: Optional[int] = None,
                 prefix: str = "saliency_", device: Union[str, torch.device, None] = None) -> None:
        super().__init__(keys)
        if isinstance(methods, Mapping):
            self.methods = dict(methods)
        else:
            self.methods = {getattr(m, "name", str(i)): m for i, m in enumerate(methods)}
        if not self.methods:
            raise ValueError("SaliencyMapsd: no saliency method given.")
        self.network = network
        self.target = target
        self.prefix = prefix
        self.device = device

    def output_keys(self) -> List[str]:
        """The keys this transform adds, in method order."""
        return [self.prefix + name for name in self.methods]

    def __call__(self, data: Mapping[Hashable, Any]) -> Dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            device = self.device or next(self.network.parameters()).device
            batch = torch.as_tensor(image.as_tensor() if isinstance(image, MetaTensor) else image)[None].to(device)
            for name, method in self.methods.items():
                with torch.enable_grad():
                    maps = method(self.network, batch, self.target)
                values = torch.as_tensor(maps).detach().float().cpu()[0][None]   # (1, *spatial)
                if isinstance(image, MetaTensor):
                    out = MetaTensor(values, meta=dict(image.meta), applied_operations=list(image.applied_operations))
                    out.affine = image.affine.clone()
                else:
                    out = values
                d[self.prefix + name] = out
        return d


class SaveParametricMapd(MapTransform):
    """Write each map key of an item as a DICOM Parametric Map over the item's DICOM source.

    Items without a DICOM source (``source_key`` missing, e.g. NIfTI-only inputs) are passed through
    untouched. The map must already be on the input grid (after ``Invertd``), channel-first
    ``(1, I, J[, K])`` in MONAI's order; it is turned to ``(K, J, I)`` and clipped to [0, 1] (the
    inverse bilinear resize can overshoot by rounding) before writing.

    Args:
        keys: map keys (``"saliency_<method>"``); the method name is the key without ``prefix``.
        source_key: item key holding the DICOM series folder or file (the datalist's ``"dicom"``).
        output_dir: folder of the written files, ``<output_dir>/<case>/<case>_<method>_pm.dcm``.
        writer: a :class:`SaliencyTrustLib.io.dicom_write.ParametricMapWriter` (its options are kept,
            ``method`` set per map) or a callable ``(map_kji, sources, path, method=...)``; default
            :func:`SaliencyTrustLib.io.dicom_write.write_parametric_map`.
        id_key: item key naming the case (falls back to the image file name).
        prefix: the map key prefix.
    """

    def __init__(self, keys: KeysCollection, output_dir: Union[str, os.PathLike], source_key: str = "dicom",
                 writer: Any = None, id_key: str = "case_id", prefix: str = "saliency_",
                 allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.source_key = source_key
        self.writer = writer
        self.id_key = id_key
        self.prefix = prefix

    def __call__(self, data: Mapping[Hashable, Any]) -> Dict[Hashable, Any]:
        d = dict(data)
        source = d.get(self.source_key)
        if not isinstance(source, (str, os.PathLike)) or not os.path.exists(source):
            return d
        writer = self.writer
        if writer is None:
            from .io.dicom_write import write_parametric_map as writer
        case = d.get(self.id_key) or Path(_source_name(next(iter(d.values())))).name.split(".")[0]
        for key in self.key_iterator(d):
            method = str(key)[len(self.prefix):] if str(key).startswith(self.prefix) else str(key)
            array = np.clip(ras_channel_first_to_kji(d[key]), 0.0, 1.0).astype(np.float32)
            folder = self.output_dir / str(case)
            folder.mkdir(parents=True, exist_ok=True)
            target = str(folder / f"{case}_{method}_pm.dcm")
            options = getattr(writer, "options", None)
            if isinstance(options, dict):  # a configured ParametricMapWriter: same options, this method
                type(writer)(**{**options, "method": method})(array, str(source), target)
            else:
                writer(array, str(source), target, method=method)
        return d

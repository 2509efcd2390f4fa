"""One description of how an image becomes a classifier's input, and how a map goes back.

:class:`Preprocessing` is declared once per study (from the command line, a bundle's metadata or
the Slicer module), recorded in the results' fingerprint and report, and applied by every front end
through the one study pipeline (:mod:`SaliencyTrustLib.cohort`). Its steps, in order:

1. **orientation** (``orient=True``): the ``(K, J, I)`` array of an
   :class:`~SaliencyTrustLib.image.ImageVolume` is transposed / flipped so that columns run to the
   patient's left (+L), rows to posterior (+P) and slices to superior (+S) - the LPS order in which
   a viewer shows an axial slice or a radiograph, and what MONAI's ``Orientationd("PLS")`` gives the
   bundle's training pipeline (:mod:`SaliencyTrustLib.transforms`). An in-plane axis that runs along
   S/I (a coronal or sagittal slice given to a 2D model) is flipped to run to inferior, so the head
   stays at the top. Without geometry (identity direction) nothing moves.
2. **intensity** (``intensity``), on the image's own grid: ``"minmax01"`` per-image min-max to
   [0, 1] (the bundle); ``"minmax11"`` to [-1, 1] (the study); ``"imagenet"`` min-max to [0, 1]
   then ImageNet mean/std per channel (after step 4; grey: mean 0.449, std 0.226);
   ``"meanstd:M,S"`` ``(x - M) / S`` on the stored values; ``"window:C,W"`` clip to
   ``[C - W/2, C + W/2]`` then [0, 1]; ``"none"``.
3. **geometry** (``resize``): ``"squash"`` resamples each axis to ``input_size`` (the study's and
   the bundle's rule: the aspect ratio changes); ``"pad"`` first pads the short axes with the image
   minimum, centred, to a cube/square, keeping the aspect ratio; ``"crop"`` first crops the long axes,
   centred. Images are resampled bilinearly / trilinearly (``align_corners=False``, no antialiasing,
   as MONAI's ``Resized`` in the training pipeline), masks nearest-neighbour.
4. **channels** (``in_channels``): the grey image repeated on C channels (the study copies one
   channel to three); then ImageNet's per-channel normalization for ``"imagenet"``.

Maps come back with :meth:`Preprocessing.map_to_native`: inverse resize, inverse pad / crop (0
where the crop cut the image away), inverse orientation, onto the image's own ``(K, J, I)`` grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

#: Named preprocessing presets. ``bundle``: the MONAI bundle's models (1 channel, 224 px, [0, 1]);
#: ``study``: Arun et al. 2021 (320 px, grey copied to 3 channels, [-1, 1]).
PRESETS: Dict[str, Dict[str, Any]] = {
    "bundle": {"in_channels": 1, "input_size": 224, "resize": "squash", "intensity": "minmax01"},
    "study": {"in_channels": 3, "input_size": 320, "resize": "squash", "intensity": "minmax11"},
}
RESIZE_MODES = ("squash", "pad", "crop")
_INTENSITY_NAMES = ("minmax01", "minmax11", "imagenet", "none")
_IMAGENET = {1: ((0.449,), (0.226,)), 3: ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}


def _parse_numbers(text: str, count: int, what: str) -> Tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise ValueError(f"intensity {what!r}: write {what.split(':')[0]}:" + ",".join(["NUMBER"] * count) + ".")
    return values


@dataclass
class Geometry:
    """What :meth:`Preprocessing.image_to_model` did to one image's grid (enough to invert it).

    Attributes:
        native_shape: the image's ``(K, J, I)`` shape.
        spatial_dims: 2 (a single slice, ``K == 1``) or 3.
        axes: the native array axes (of the spatial array: ``(J, I)`` in 2D, ``(K, J, I)`` in 3D)
            in oriented order; ``flips``: which oriented axes were reversed.
        oriented_shape: the spatial shape after orientation.
        box: per oriented axis ``(start, stop)`` of the image inside the padded / cropped frame
            (``pad``: where the image sits in the frame; ``crop``: the kept part of the image).
        frame_shape: the padded / cropped shape that was resized to ``model_shape``.
        model_shape: the network grid.
        resize: the mode used.
    """

    native_shape: Tuple[int, ...]
    spatial_dims: int
    axes: Tuple[int, ...]
    flips: Tuple[bool, ...]
    oriented_shape: Tuple[int, ...]
    box: Tuple[Tuple[int, int], ...]
    frame_shape: Tuple[int, ...]
    model_shape: Tuple[int, ...]
    resize: str


@dataclass
class Preprocessing:
    """How an image becomes the classifier's input (see the module docstring for every step).

    Args:
        in_channels: input channels of the network (grey repeated); None: read from the model's
            first convolution (:func:`SaliencyTrustLib.model_spec.infer_in_channels`).
        input_size: network grid edge (int, every axis) or a shape; None: 224 for a 2D model, 64
            for a 3D one.
        resize: ``"squash"``, ``"pad"`` or ``"crop"``.
        intensity: ``"minmax01"``, ``"minmax11"``, ``"imagenet"``, ``"meanstd:M,S"``,
            ``"window:C,W"`` or ``"none"``.
        orient: apply the orientation step.
    """

    in_channels: Optional[int] = None
    input_size: Any = None
    resize: str = "squash"
    intensity: str = "minmax01"
    orient: bool = True

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {list(RESIZE_MODES)}, got {self.resize!r}.")
        self.intensity = str(self.intensity)
        head = self.intensity.split(":", 1)[0]
        if head == "meanstd":
            _parse_numbers(self.intensity.split(":", 1)[-1], 2, self.intensity)
        elif head == "window":
            if _parse_numbers(self.intensity.split(":", 1)[-1], 2, self.intensity)[1] <= 0:
                raise ValueError(f"intensity {self.intensity!r}: the window width must be > 0.")
        elif self.intensity not in _INTENSITY_NAMES:
            raise ValueError(f"intensity must be one of {list(_INTENSITY_NAMES)}, 'meanstd:M,S' or 'window:C,W'; "
                             f"got {self.intensity!r}.")
        if self.in_channels is not None and int(self.in_channels) < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels}.")
        if self.input_size is not None:
            sizes = [self.input_size] if isinstance(self.input_size, (int, np.integer)) else list(self.input_size)
            if not sizes or any(int(s) < 8 for s in sizes):
                raise ValueError(f"input_size must be >= 8 pixels per axis, got {self.input_size!r}.")
            self.input_size = int(sizes[0]) if len(sizes) == 1 else tuple(int(s) for s in sizes)
        if self.in_channels is not None:
            self.in_channels = int(self.in_channels)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "Preprocessing":
        """A named preset (:data:`PRESETS`) with some fields overridden (None values ignored)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preprocessing preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}})

    def resolved(self, spatial_dims: int, in_channels: Optional[int]) -> "Preprocessing":
        """A copy with ``in_channels`` and ``input_size`` filled in for a ``spatial_dims``-D model."""
        size = self.input_size if self.input_size is not None else (64 if spatial_dims == 3 else 224)
        return replace(self, in_channels=self.in_channels or in_channels or 1, input_size=size)

    def to_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        if isinstance(out["input_size"], tuple):
            out["input_size"] = list(out["input_size"])
        return out

    def model_shape(self, spatial_dims: int) -> Tuple[int, ...]:
        size = self.input_size if self.input_size is not None else (64 if spatial_dims == 3 else 224)
        shape = (size,) * spatial_dims if isinstance(size, int) else tuple(size)
        if len(shape) != spatial_dims:
            raise ValueError(f"input_size {size!r} has {len(shape)} axes but the model is {spatial_dims}D.")
        return shape

    # ------------------------------------------------------------------ geometry

    def geometry(self, volume: Any, spatial_dims: int) -> Geometry:
        """The grid steps for ``volume`` (an ImageVolume) and a ``spatial_dims``-D model."""
        shape = tuple(int(n) for n in volume.shape)
        if spatial_dims == 2 and shape[0] != 1:
            raise ValueError(f"a {shape[0]}-slice volume cannot enter a 2D model; give a single slice "
                             "(a radiograph) or a 3D model.")
        if spatial_dims == 3 and shape[0] == 1:
            raise ValueError("a single-slice image cannot enter a 3D model; give a volume or a 2D model.")
        spatial = shape[1:] if spatial_dims == 2 else shape
        axes, flips = _orientation(np.asarray(volume.direction, dtype=float), spatial_dims) if self.orient \
            else (tuple(range(spatial_dims)), (False,) * spatial_dims)
        oriented = tuple(spatial[a] for a in axes)
        model_shape = self.model_shape(spatial_dims)
        box: List[Tuple[int, int]] = []
        frame: List[int] = []
        if self.resize == "squash":
            box = [(0, n) for n in oriented]
            frame = list(oriented)
        else:
            # the frame keeps the model grid's aspect ratio: its edge per unit of model pixel
            scale = (max if self.resize == "pad" else min)(n / m for n, m in zip(oriented, model_shape))
            for n, m in zip(oriented, model_shape):
                edge = max(1, int(round(scale * m)))
                start = (edge - n) // 2 if self.resize == "pad" else (n - edge) // 2
                box.append((start, start + n) if self.resize == "pad" else (start, start + edge))
                frame.append(edge)
        return Geometry(shape, spatial_dims, axes, flips, oriented, tuple(box), tuple(frame), model_shape,
                        self.resize)

    def image_to_model(self, volume: Any, spatial_dims: int) -> Tuple[np.ndarray, Geometry]:
        """``volume`` -> network input ``(C, *model_shape)`` float32, and its :class:`Geometry`.

        Raises:
            ValueError: NaN / infinite voxels, or the wrong kind of image for the model.
        """
        geometry = self.geometry(volume, spatial_dims)
        values = np.asarray(volume.array, dtype=np.float32)
        if not np.isfinite(values).all():
            raise ValueError("the image holds NaN or infinite values; fix the source image.")
        # intensity first, on the image's own grid (as the bundle's MONAI training pipeline does)
        oriented = self._scale(_orient(values, geometry))
        framed = _frame(oriented, geometry, fill=float(oriented.min()))
        resized = _resample(framed, geometry.model_shape, "linear")
        channels = np.repeat(resized[None], self.in_channels or 1, axis=0)
        return np.ascontiguousarray(self._imagenet(channels), dtype=np.float32), geometry

    def mask_to_model(self, mask: np.ndarray, geometry: Geometry) -> np.ndarray:
        """A ``(K, J, I)`` mask on the image grid -> bool ``model_shape`` (nearest neighbour)."""
        mask = np.asarray(mask).reshape(geometry.native_shape).astype(np.float32)
        framed = _frame(_orient(mask, geometry), geometry, fill=0.0)
        return _resample(framed, geometry.model_shape, "nearest") > 0.5

    def map_to_native(self, saliency_map: np.ndarray, geometry: Geometry) -> np.ndarray:
        """A map on the network grid ``model_shape`` -> float32 ``(K, J, I)`` on the image's grid
        (bilinear / trilinear; 0 where a ``crop`` cut the image away)."""
        values = np.asarray(saliency_map, dtype=np.float32).reshape(geometry.model_shape)
        frame = _resample(values, geometry.frame_shape, "linear")
        oriented = np.zeros(geometry.oriented_shape, np.float32)
        if geometry.resize == "pad":
            oriented[...] = frame[tuple(slice(a, b) for a, b in geometry.box)]
        else:
            oriented[tuple(slice(a, b) for a, b in geometry.box)] = frame
        for axis, flip in enumerate(geometry.flips):
            if flip:
                oriented = np.flip(oriented, axis)
        native = np.transpose(oriented, np.argsort(geometry.axes))
        return np.ascontiguousarray(native.reshape(geometry.native_shape), dtype=np.float32)

    def _scale(self, values: np.ndarray) -> np.ndarray:
        head, _, arguments = self.intensity.partition(":")
        if head == "none":
            return values
        if head == "meanstd":
            mean, std = _parse_numbers(arguments, 2, self.intensity)
            return (values - mean) / std
        if head == "window":
            centre, width = _parse_numbers(arguments, 2, self.intensity)
            values = np.clip(values, centre - width / 2, centre + width / 2)
            low, high = centre - width / 2, centre + width / 2
        else:
            low, high = float(values.min()), float(values.max())
        unit = np.zeros_like(values) if high <= low else (values - low) / (high - low)
        if head == "minmax11":
            return unit * 2.0 - 1.0
        return unit

    def _imagenet(self, channels: np.ndarray) -> np.ndarray:
        """ImageNet mean/std per channel of ``channels`` ``(C, *spatial)`` in [0, 1] when
        ``intensity="imagenet"`` (3 channels: the ImageNet values; otherwise their grey mean/std)."""
        if self.intensity != "imagenet":
            return channels
        count = channels.shape[0]
        mean, std = _IMAGENET[3] if count == 3 else (_IMAGENET[1][0] * count, _IMAGENET[1][1] * count)
        shape = (-1,) + (1,) * (channels.ndim - 1)
        return (channels - np.asarray(mean, np.float32).reshape(shape)) / np.asarray(std, np.float32).reshape(shape)


def _orientation(direction: np.ndarray, spatial_dims: int) -> Tuple[Tuple[int, ...], Tuple[bool, ...]]:
    """Axis order and flips that bring the spatial array to (S, P, L) order, +S, +P, +L."""
    # columns of ``direction`` are the LPS unit vectors of I, J, K; array axes are (K, J, I)
    vectors = [direction[:, 2], direction[:, 1], direction[:, 0]]
    if spatial_dims == 2:
        vectors = vectors[1:]                              # (J, I): rows, columns
        dominant = [int(np.argmax(np.abs(v))) for v in vectors]
        # columns should run along x, rows along y (or z for a coronal / sagittal slice)
        swap = dominant[1] != 0 and dominant[0] == 0
        axes = (1, 0) if swap else (0, 1)
        flips = []
        for axis in axes:
            world = int(np.argmax(np.abs(vectors[axis])))
            sign = vectors[axis][world]
            flips.append(bool(sign > 0) if world == 2 else bool(sign < 0))   # z: rows run to inferior
        return axes, tuple(flips)
    dominant = [int(np.argmax(np.abs(v))) for v in vectors]
    if sorted(dominant) != [0, 1, 2]:                      # oblique beyond 45 degrees: keep the order
        return (0, 1, 2), (False, False, False)
    axes = tuple(dominant.index(world) for world in (2, 1, 0))
    flips = tuple(bool(vectors[a][w] < 0) for a, w in zip(axes, (2, 1, 0)))
    return axes, flips


def _orient(array: np.ndarray, geometry: Geometry) -> np.ndarray:
    spatial = array.reshape(geometry.native_shape[1:] if geometry.spatial_dims == 2 else geometry.native_shape)
    oriented = np.transpose(spatial, geometry.axes)
    for axis, flip in enumerate(geometry.flips):
        if flip:
            oriented = np.flip(oriented, axis)
    return np.ascontiguousarray(oriented)


def _frame(array: np.ndarray, geometry: Geometry, fill: float) -> np.ndarray:
    if geometry.resize == "squash":
        return array
    if geometry.resize == "crop":
        return array[tuple(slice(a, b) for a, b in geometry.box)]
    framed = np.full(geometry.frame_shape, fill, dtype=array.dtype)
    framed[tuple(slice(a, b) for a, b in geometry.box)] = array
    return framed


def _resample(array: np.ndarray, shape: Sequence[int], mode: str) -> np.ndarray:
    """``array`` resampled to ``shape``: ``"linear"`` (bi/trilinear, align_corners=False) or
    ``"nearest"``."""
    shape = tuple(int(n) for n in shape)
    if array.shape == shape:
        return np.asarray(array, dtype=np.float32)
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    if mode == "linear":
        out = F.interpolate(tensor, size=shape, mode="bilinear" if array.ndim == 2 else "trilinear",
                            align_corners=False)
    else:
        out = F.interpolate(tensor, size=shape, mode="nearest")
    return out[0, 0].numpy()


__all__ = ["Preprocessing", "Geometry", "PRESETS", "RESIZE_MODES"]

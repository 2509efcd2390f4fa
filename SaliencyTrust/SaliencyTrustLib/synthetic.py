"""Synthetic cases with known lesions: the project's default data, since nothing may be downloaded.

Two kinds, both deterministic from a seed:

* ``cxr``: chest-radiograph-like 2D images, ``(H, W)`` float32 in [0, 1] (display convention of
  MONOCHROME2: lungs dark, bone and mediastinum bright). A positive case carries one or two
  rounded opacities inside the lung fields (pneumonia-like); its ground truth is the pixel mask
  and the boxes around each opacity (RSNA layout: ``x, y, width, height`` in pixels, x = column).
* ``ct``: CT-like 3D volumes, ``(D, H, W)`` float32 in [0, 1] (scaled from -1000..1000 HU), a
  chest cylinder with two lungs; a positive case carries one spherical nodule in a lung.

Arrays are in ``(K, J, I)`` order like :class:`SaliencyTrustLib.image.ImageVolume`. These arrays are
what ``saliency-trust synth`` writes as DICOM; the classifier task (lesion present or not) is
learnable to AUC > 0.9 by a small CNN while needing the lesion, not a shortcut: negatives and
positives share the same anatomy distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np
from scipy import ndimage

#: Default in-plane size of the synthetic radiographs, pixels.
CXR_SIZE = 224
#: Default edge of the synthetic CT volumes, voxels.
CT_SIZE = 64


@dataclass
class SyntheticCase:
    """One synthetic case.

    Attributes:
        image: ``(H, W)`` or ``(D, H, W)`` float32 in [0, 1].
        mask: bool array of ``image``'s shape, True inside the lesion(s); all False for negatives.
        label: 1 when a lesion is present, else 0.
        boxes: per lesion ``(x, y, width, height)`` in pixels (2D) or
            ``(x, y, z, width, height, depth)`` (3D), x along columns (I), y along rows (J).
        case_id: stable identifier, ``"{kind}-{seed}-{index:04d}"``.
    """

    image: np.ndarray
    mask: np.ndarray
    label: int
    boxes: List[Tuple[int, ...]] = field(default_factory=list)
    case_id: str = ""


def _ellipse(shape: Tuple[int, ...], centre, radii) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    total = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii))
    return total <= 1.0


def _lesion_profile(shape, centre, radius) -> np.ndarray:
    """Soft spherical opacity: 1 at the centre falling to 0 past ``radius``; mask is profile > 0.5."""
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, centre)))
    return np.clip(1.5 - dist / radius, 0.0, 1.0).astype(np.float32)


def _boxes_from_mask(mask: np.ndarray) -> List[Tuple[int, ...]]:
    labels, count = ndimage.label(mask)
    boxes = []
    for slices in ndimage.find_objects(labels):
        if slices is None:
            continue
        starts = [s.start for s in slices][::-1]            # x (I) first
        sizes = [s.stop - s.start for s in slices][::-1]
        boxes.append(tuple(int(v) for v in (*starts, *sizes)))
    return boxes


def make_cxr_case(rng: np.random.Generator, positive: bool, size: int = CXR_SIZE,
                  lesion_radius: Tuple[float, float] = (0.05, 0.09),
                  lesion_contrast: Tuple[float, float] = (0.22, 0.35)) -> SyntheticCase:
    """One chest-radiograph-like image.

    Args:
        rng: the random generator (the cohort seed decides everything).
        positive: add one or two opacities.
        size: edge of the square image, pixels.
        lesion_radius: range of opacity radii as a fraction of ``size``.
        lesion_contrast: range of the opacity's peak intensity increase (image units).
    """
    shape = (size, size)
    s = float(size)
    jitter = lambda scale: rng.normal(0.0, scale * s)  # noqa: E731 - tiny local helper
    body = _ellipse(shape, (0.55 * s + jitter(0.01), 0.5 * s + jitter(0.01)), (0.48 * s, 0.44 * s))
    image = 0.35 * body.astype(np.float32)
    lung_centres = [(0.48 * s + jitter(0.015), (0.5 + side * 0.19) * s + jitter(0.01)) for side in (-1, 1)]
    lung_radii = [(0.30 * s * rng.uniform(0.9, 1.1), 0.13 * s * rng.uniform(0.9, 1.1)) for _ in range(2)]
    lungs = np.zeros(shape, bool)
    for centre, radii in zip(lung_centres, lung_radii):
        lungs |= _ellipse(shape, centre, radii)
    image[lungs] = 0.12
    rows = np.arange(size, dtype=np.float32)[:, None]
    cols = np.arange(size, dtype=np.float32)[None, :]
    rib_period = s * rng.uniform(0.085, 0.1)
    ribs = (np.sin(2 * np.pi * (rows + 0.15 * np.abs(cols - s / 2)) / rib_period) > 0.55) & lungs
    image += 0.08 * ribs
    mediastinum = _ellipse(shape, (0.6 * s, 0.5 * s + jitter(0.01)), (0.3 * s, 0.07 * s))
    image[mediastinum & body] = 0.55
    image = ndimage.gaussian_filter(image, sigma=1.2)

    lesion = np.zeros(shape, np.float32)
    if positive:
        for _ in range(int(rng.integers(1, 3))):
            centre, radii = lung_centres[int(rng.integers(0, 2))], lung_radii[0]
            offset = rng.uniform(-0.6, 0.6, size=2) * np.array(radii)
            radius = rng.uniform(*lesion_radius) * s
            profile = _lesion_profile(shape, np.array(centre) + offset, radius)
            lesion = np.maximum(lesion, profile * rng.uniform(*lesion_contrast))
    mask = lesion > 0.5 * lesion.max() if positive else np.zeros(shape, bool)
    image = image + lesion
    image += ndimage.gaussian_filter(rng.normal(0.0, 0.05, shape).astype(np.float32), 0.8)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    return SyntheticCase(image, mask, int(positive), _boxes_from_mask(mask))


def make_ct_case(rng: np.random.Generator, positive: bool, size: int = CT_SIZE,
                 lesion_radius: Tuple[float, float] = (0.06, 0.1),
                 lesion_contrast: Tuple[float, float] = (0.3, 0.45)) -> SyntheticCase:
    """One CT-like chest volume of ``size`` voxels per edge, axes ``(D, H, W)`` = (K, J, I)."""
    shape = (size, size, size)
    s = float(size)
    body = _ellipse(shape, (s / 2, 0.5 * s, 0.5 * s), (0.7 * s, 0.36 * s, 0.46 * s))
    image = np.where(body, 0.52, 0.0).astype(np.float32)   # soft tissue ~ +40 HU; air = -1000 HU -> 0
    lung_centres = [(s / 2, 0.48 * s, (0.5 + side * 0.2) * s) for side in (-1, 1)]
    lung_radii = (0.55 * s, 0.25 * s, 0.15 * s * rng.uniform(0.9, 1.1))
    lungs = np.zeros(shape, bool)
    for centre in lung_centres:
        lungs |= _ellipse(shape, centre, lung_radii)
    image[lungs] = 0.08                                    # lung ~ -850 HU
    spine = _ellipse(shape, (s / 2, 0.75 * s, 0.5 * s), (0.7 * s, 0.06 * s, 0.06 * s))
    image[spine] = 0.85
    lesion = np.zeros(shape, np.float32)
    if positive:
        centre = np.array(lung_centres[int(rng.integers(0, 2))])
        centre = centre + rng.uniform(-0.5, 0.5, 3) * np.array(lung_radii) * np.array([0.6, 1, 1])
        radius = rng.uniform(*lesion_radius) * s
        lesion = _lesion_profile(shape, centre, radius) * rng.uniform(*lesion_contrast)
    mask = lesion > 0.5 * lesion.max() if positive else np.zeros(shape, bool)
    image = image + lesion
    image += rng.normal(0.0, 0.03, shape).astype(np.float32)
    image = np.clip(ndimage.gaussian_filter(image, 0.6), 0.0, 1.0).astype(np.float32)
    return SyntheticCase(image, mask, int(positive), _boxes_from_mask(mask))


def make_cohort(n: int = 40, seed: int = 0, kind: str = "cxr", positive_fraction: float = 0.5,
                size: int | None = None) -> List[SyntheticCase]:
    """``n`` cases, deterministic from ``seed``; case ``i`` depends only on ``(seed, kind, i)``.

    Labels are interleaved evenly (case ``i`` is positive when ``floor((i + 1) f) > floor(i f)`` for
    the fraction ``f``; with 0.5 every odd-numbered case), so any prefix of the cohort is balanced.
    """
    if kind not in ("cxr", "ct"):
        raise ValueError(f"kind must be 'cxr' or 'ct', got {kind!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    make = make_cxr_case if kind == "cxr" else make_ct_case
    cases = []
    for index in range(n):
        rng = np.random.default_rng([seed, index, 0 if kind == "cxr" else 1])
        positive = np.floor((index + 1) * positive_fraction) > np.floor(index * positive_fraction)
        kwargs = {} if size is None else {"size": size}
        case = make(rng, bool(positive), **kwargs)
        case.case_id = f"{kind}-{seed}-{index:04d}"
        cases.append(case)
    return cases


def make_cases(n: int, seed: int, kind: str, size: int | None = None,
               lesion_radius: Tuple[float, float] | None = None,
               lesion_contrast: Tuple[float, float] | None = None) -> list:
    """The cohort's cases: :func:`SaliencyTrustLib.synthetic.make_cohort`, or, when lesion size or
    contrast is given, the same generator (same per-case seeds and labels) with those ranges.

    Args:
        lesion_radius: ``(low, high)`` lesion radius as a fraction of the image edge.
        lesion_contrast: ``(low, high)`` peak intensity added by the lesion ([0, 1] image units; for
            CT 1.0 = 2000 HU).
    """
    if lesion_radius is None and lesion_contrast is None:
        return make_cohort(n=n, seed=seed, kind=kind, size=size)
    if kind not in ("cxr", "ct"):
        raise ValueError(f"kind must be 'cxr' or 'ct', got {kind!r}")
    options = {}
    for name, value in (("lesion_radius", lesion_radius), ("lesion_contrast", lesion_contrast)):
        if value is not None:
            low, high = (float(v) for v in value)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {value}")
            options[name] = (low, high)
    if size is not None:
        options["size"] = size
    make = make_cxr_case if kind == "cxr" else make_ct_case
    cases = []
    for index in range(n):
        # Mirrors make_cohort: per-case generator and interleaved labels (f = 0.5); tested equal.
        rng = np.random.default_rng([seed, index, 0 if kind == "cxr" else 1])
        positive = np.floor((index + 1) * 0.5) > np.floor(index * 0.5)
        case = make(rng, bool(positive), **options)
        case.case_id = f"{kind}-{seed}-{index:04d}"
        cases.append(case)
    return cases

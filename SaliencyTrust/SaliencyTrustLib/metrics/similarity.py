"""Similarity of two saliency maps on their 2D or 3D grid: SSIM and Spearman rank correlation, batched.

SSIM (:func:`ssim`) is the mean structural similarity of Wang et al. 2004 as
``skimage.metrics.structural_similarity`` (scikit-image 0.26) defines it for one pair of grey
images (never on flattened maps): local means, variances and covariance under a ``win_size``-wide
uniform window (or a Gaussian of ``sigma``), ``S = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)
(vx + vy + C2))`` with ``C1 = (K1 R)^2``, ``C2 = (K2 R)^2``, ``R = data_range``, averaged over the
grid after cropping ``(win_size - 1) // 2`` pixels on every side. Every parameter that changes the
number is explicit; ``preset="paper"`` is the study's choice (Arun et al. 2021): scikit-image's
defaults (7-pixel uniform window, sample covariance, K1 0.01, K2 0.03) with ``data_range=2``,
which scikit-image of 2020 used implicitly for float maps in [0, 1].

Speed: one compiled pass over every pair, in float64, on all cores
(:mod:`SaliencyTrustLib.metrics._ssim_kernel`): 6-7x faster than a loop of scikit-image calls on
100 maps of 320x320 and 10-20x on 96^3 volumes (``benchmarks/bench_metrics.py``), equal to it
within 1e-7 (float32 maps, which scikit-image filters in float32) or 1e-15 (float64 maps).

Spearman (:func:`spearman`) is the Pearson correlation of the average ranks of the flattened maps
(``scipy.stats.spearmanr``). Binder et al. (CVPR 2023) showed that SSIM-based randomization tests
can be passed by uninformative maps; a rank correlation beside SSIM is the cross-check.

Undefined items (NaN in a map, and by default a constant map: the study's min-max normalisation
turned those into NaN, and it dropped them) are NaN with a reason, see
:mod:`SaliencyTrustLib.metrics.localization` for the ``return_reasons`` convention.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ._common import (REASON_CONSTANT_MAP, REASON_NAN_MAP, Reasons, as_batch, check_same_shape,
                      finish, row_flags)
from ._ssim_kernel import SSIMKernel, numba_threads

__all__ = ["ssim", "ssim_pairs", "SSIMReference", "spearman", "spearman_pairs",
           "SpearmanReference", "SSIMOptions", "PAPER_SSIM", "SSIM"]

_Result = Union[np.ndarray, Tuple[np.ndarray, Reasons]]

#: The study's SSIM settings (scikit-image defaults, data_range 2).
PAPER_SSIM: Dict[str, Any] = dict(data_range=2.0, win_size=None, gaussian_weights=False,
                                  sigma=1.5, use_sample_covariance=True, K1=0.01, K2=0.03)


class SSIMOptions:
    """Resolved SSIM parameters (every one that changes the number), with scikit-image's defaults.

    Args:
        data_range: ``R`` in ``C1 = (K1 R)^2`` and ``C2 = (K2 R)^2``: the dynamic range of the maps.
            Required (no silent default): 1 for maps in [0, 1] by the book, 2 to reproduce the
            study (``preset="paper"``).
        win_size: odd side of the window; default 7, or ``2 * int(3.5 sigma + 0.5) + 1`` (11)
            with Gaussian weights, as scikit-image.
        gaussian_weights: Gaussian window of ``sigma`` truncated at 3.5 sigma (Wang et al. 2004)
            instead of the uniform one.
        sigma: standard deviation of the Gaussian window, pixels.
        use_sample_covariance: normalise (co)variances by ``NP - 1`` (``NP = win_size ** ndim``)
            instead of ``NP``; scikit-image's default True, Wang et al. use False.
        K1, K2: the stabilising constants (0.01, 0.03).
        preset: ``"paper"`` fills every option not given with :data:`PAPER_SSIM`.
    """

    def __init__(self, data_range: Optional[float] = None, *, win_size: Optional[int] = None,
                 gaussian_weights: bool = False, sigma: float = 1.5,
                 use_sample_covariance: bool = True, K1: float = 0.01, K2: float = 0.03,
                 preset: Optional[str] = None):
        if preset not in (None, "paper"):
            raise ValueError(f"preset must be None or 'paper', got {preset!r}")
        if preset == "paper" and data_range is None:
            data_range = PAPER_SSIM["data_range"]
        if data_range is None:
            raise ValueError("ssim: data_range is required (the dynamic range of the maps, e.g. 1.0 "
                             "for maps in [0, 1]); pass preset='paper' for the study's data_range=2")
        if not data_range > 0:
            raise ValueError(f"ssim: data_range must be > 0, got {data_range}")
        if K1 < 0 or K2 < 0:
            raise ValueError(f"ssim: K1 and K2 must be >= 0, got K1={K1}, K2={K2}")
        if sigma <= 0:
            raise ValueError(f"ssim: sigma must be > 0, got {sigma}")
        self.truncate = 3.5
        if win_size is None:
            win_size = 2 * int(self.truncate * sigma + 0.5) + 1 if gaussian_weights else 7
        if int(win_size) != win_size or win_size < 1 or win_size % 2 == 0:
            raise ValueError(f"ssim: win_size must be an odd positive integer, got {win_size}")
        self.data_range = float(data_range)
        self.win_size = int(win_size)
        self.gaussian_weights = bool(gaussian_weights)
        self.sigma = float(sigma)
        self.use_sample_covariance = bool(use_sample_covariance)
        self.K1 = float(K1)
        self.K2 = float(K2)
        self.preset = preset

    def to_dict(self) -> Dict[str, Any]:
        """The parameters as plain types (recorded in every result)."""
        return dict(data_range=self.data_range, win_size=self.win_size,
                    gaussian_weights=self.gaussian_weights, sigma=self.sigma,
                    use_sample_covariance=self.use_sample_covariance, K1=self.K1, K2=self.K2,
                    truncate=self.truncate if self.gaussian_weights else None)

    def skimage_kwargs(self) -> Dict[str, Any]:
        """The same settings as keyword arguments of ``skimage.metrics.structural_similarity``."""
        return dict(data_range=self.data_range, win_size=self.win_size,
                    gaussian_weights=self.gaussian_weights, sigma=self.sigma,
                    use_sample_covariance=self.use_sample_covariance, K1=self.K1, K2=self.K2)


def _float_type(a: np.ndarray, b: np.ndarray):
    """scikit-image's working precision: float32 when both inputs are float32 (or smaller), else float64."""
    small = (np.float16, np.float32, np.uint8, np.int8, np.bool_)
    return np.float32 if a.dtype.type in small and b.dtype.type in small else np.float64


def _map_flags(maps: np.ndarray, constant: str) -> Tuple[np.ndarray, np.ndarray]:
    """Per map: (finite, constant) flags; constant flags all False when ``constant="compute"``."""
    return row_flags(maps.reshape(maps.shape[0], -1), constant)


def _pair_reasons(flags_a, flags_b, pairs: np.ndarray) -> List[Optional[str]]:
    finite = flags_a[0][pairs[:, 0]] & flags_b[0][pairs[:, 1]]
    const = flags_a[1][pairs[:, 0]] | flags_b[1][pairs[:, 1]]
    return [REASON_NAN_MAP if not finite[i] else (REASON_CONSTANT_MAP if const[i] else None)
            for i in range(pairs.shape[0])]


def _itemwise_reasons(flags_a, flags_b) -> Tuple[Reasons, np.ndarray]:
    """Reasons of the item-by-item pairs ``(i, i)`` and the indices of the defined ones."""
    index = np.arange(flags_b[0].shape[0])
    reasons = _pair_reasons(flags_a, flags_b, np.stack([index, index], 1))
    return reasons, np.flatnonzero([r is None for r in reasons])


def _resolve(maps_a: Any, maps_b: Any, pairs: Any, options: SSIMOptions, constant: str,
             precision: Optional[str]):
    """Validated inputs of an SSIM call: (a, b, same, pairs, float_type)."""
    if constant not in ("nan", "compute"):
        raise ValueError(f"constant must be 'nan' or 'compute', got {constant!r}")
    a = as_batch(maps_a, "maps_a")
    same = maps_b is maps_a
    b = a if same else as_batch(maps_b, "maps_b")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"maps_a items have shape {a.shape[1:]} but maps_b items {b.shape[1:]}; "
                         "SSIM compares maps on the same grid")
    _check_extent(a.shape[1:], options)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.size and (pairs[:, 0].min() < 0 or pairs[:, 0].max() >= a.shape[0]
                       or pairs[:, 1].min() < 0 or pairs[:, 1].max() >= b.shape[0]):
        raise ValueError("ssim_pairs: pair indices out of range of maps_a / maps_b")
    return a, b, same, pairs, _precision(precision, a, b)


def _check_extent(spatial: Tuple[int, ...], options: SSIMOptions) -> None:
    if len(spatial) not in (2, 3):
        raise ValueError(f"ssim: maps of shape {spatial} have {len(spatial)} spatial axes; SSIM "
                         "compares 2D (B, H, W) or 3D (B, D, H, W) maps: drop singleton "
                         "channel axes (maps[:, 0]) or add the batch axis (maps[None])")
    if 1 in spatial:
        raise ValueError(f"ssim: maps of spatial shape {spatial} have a singleton axis; SSIM "
                         "compares (B, H, W) or (B, D, H, W) maps: drop the channel axis "
                         "(maps[:, 0])")
    if any(n < options.win_size for n in spatial):
        raise ValueError(f"ssim: win_size {options.win_size} exceeds the map extent "
                         f"{spatial}; pass a smaller odd win_size")


def _precision(precision: Optional[str], a: np.ndarray, b: np.ndarray):
    if precision not in (None, "float32", "float64"):
        raise ValueError(f"precision must be None, 'float32' or 'float64', got {precision!r}")
    return {"float32": np.float32, "float64": np.float64}.get(precision) or _float_type(a, b)


def ssim_pairs(maps_a: Any, maps_b: Any, pairs: Any, data_range: Optional[float] = None, *,
               preset: Optional[str] = None, win_size: Optional[int] = None,
               gaussian_weights: bool = False, sigma: float = 1.5,
               use_sample_covariance: bool = True, K1: float = 0.01, K2: float = 0.03,
               constant: str = "nan", precision: Optional[str] = None,
               return_reasons: bool = False, workers: Optional[int] = None) -> _Result:
    """SSIM of ``maps_a[i]`` and ``maps_b[j]`` for each row ``(i, j)`` of ``pairs``.

    Each map is converted once however many pairs it is in; each pair is one pass of the compiled
    kernel over the two maps.

    Args:
        maps_a, maps_b: batches ``(A, *spatial)`` and ``(B, *spatial)`` on the same grid (may be
            the same object: the statistics are then computed once).
        pairs: integer array ``(M, 2)`` of indices into ``maps_a`` and ``maps_b``.
        data_range, preset, win_size, gaussian_weights, sigma, use_sample_covariance, K1, K2:
            see :class:`SSIMOptions`.
        constant: ``"nan"`` (default): a pair with a constant map is NaN with a reason;
            ``"compute"``: scikit-image's value.
        precision: ``"float32"``/``"float64"``: the maps are rounded to it before comparing
            (the window statistics are always accumulated in float64); default: scikit-image's
            (float32 when both inputs are float32, else float64).
        return_reasons: also return one reason (or None) per pair.
        workers: threads (default: ``OMP_NUM_THREADS`` when set, else one per core); no effect on
            the values.

    Returns:
        float64 ``(M,)``.
    """
    options = SSIMOptions(data_range, win_size=win_size, gaussian_weights=gaussian_weights,
                          sigma=sigma, use_sample_covariance=use_sample_covariance, K1=K1, K2=K2,
                          preset=preset)
    a, b, same, pairs, float_type = _resolve(maps_a, maps_b, pairs, options, constant, precision)
    flags_a = _map_flags(a, constant)
    flags_b = flags_a if same else _map_flags(b, constant)
    reasons = _pair_reasons(flags_a, flags_b, pairs)
    values = np.full(pairs.shape[0], np.nan)
    defined = np.flatnonzero([r is None for r in reasons])
    if defined.size:
        kernel = SSIMKernel(options, a.shape[1:])
        prepared_a = kernel.prepare(a, float_type)
        prepared_b = prepared_a if same else kernel.prepare(b, float_type)
        with numba_threads(workers):
            values[defined] = kernel.means(prepared_a, pairs[defined, 0],
                                           prepared_b, pairs[defined, 1])
    return finish(values, reasons, return_reasons)


def ssim(maps_a: Any, maps_b: Any, data_range: Optional[float] = None, *,
         preset: Optional[str] = None, win_size: Optional[int] = None,
         gaussian_weights: bool = False, sigma: float = 1.5, use_sample_covariance: bool = True,
         K1: float = 0.01, K2: float = 0.03, constant: str = "nan",
         precision: Optional[str] = None, return_reasons: bool = False,
         workers: Optional[int] = None) -> _Result:
    """Per-item mean SSIM of two batches of maps on their 2D/3D grid.

    Args:
        maps_a, maps_b: ``(B, *spatial)`` numpy arrays or torch tensors (2D ``(B, H, W)`` or 3D
            ``(B, D, H, W)``), compared item by item; not modified.
        data_range: the maps' dynamic range ``R`` (required unless ``preset="paper"``, which
            uses 2 like the study). For maps in [0, 1], 1 is the textbook value.
        preset: ``"paper"``: scikit-image's defaults with ``data_range=2`` for anything not given.
        win_size: odd window side (default 7; 11 with Gaussian weights of sigma 1.5).
        gaussian_weights: Gaussian window (sigma ``sigma``, truncated at 3.5 sigma).
        sigma: Gaussian standard deviation, pixels.
        use_sample_covariance: ``NP / (NP - 1)`` (co)variance normalisation (default True).
        K1, K2: SSIM constants (0.01, 0.03).
        constant: ``"nan"`` (default) or ``"compute"`` for pairs with a constant map.
        precision: the maps are rounded to it first (``"float32"``/``"float64"``); default as
            scikit-image (float32 for float32 inputs); the statistics are accumulated in float64.
        return_reasons: also return one reason (or None) per item.
        workers: threads (default: ``OMP_NUM_THREADS`` when set, else one per core); no effect on
            the values.

    Returns:
        float64 ``(B,)``: item ``i`` equals ``skimage.metrics.structural_similarity(maps_a[i],
        maps_b[i], **options)`` (within 1e-7 for float32 maps, 1e-15 for float64).

    Example:
        >>> import numpy as np
        >>> from SaliencyTrustLib.metrics import ssim
        >>> a = np.random.default_rng(0).random((4, 64, 64), dtype=np.float32)
        >>> ssim(a, a, preset="paper").round(6).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    options = SSIMOptions(data_range, win_size=win_size, gaussian_weights=gaussian_weights,
                          sigma=sigma, use_sample_covariance=use_sample_covariance, K1=K1, K2=K2,
                          preset=preset)
    a = as_batch(maps_a, "maps_a")
    b = as_batch(maps_b, "maps_b")
    check_same_shape(a, b, "maps_a", "maps_b")
    index = np.arange(a.shape[0])
    a, b, _, _, float_type = _resolve(a, b, np.stack([index, index], 1), options, constant,
                                          precision)
    reasons, defined = _itemwise_reasons(_map_flags(a, constant), _map_flags(b, constant))
    values = np.full(a.shape[0], np.nan)
    if defined.size:
        kernel = SSIMKernel(options, a.shape[1:])
        with numba_threads(workers):
            values[defined] = kernel.means(kernel.prepare(a, float_type), defined,
                                           kernel.prepare(b, float_type), defined)
    return finish(values, reasons, return_reasons)


def average_ranks(flat: np.ndarray) -> np.ndarray:
    """1-based ranks of each row of ``(n, N)``, ties sharing their average rank
    (``scipy.stats.rankdata(flat, axis=1)``), float64.

    One sort per row (torch's, rows on all cores; the order within a run of ties does not matter,
    the run gets the mean of its ranks).
    """
    import torch

    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float64)
    values, order = torch.sort(torch.from_numpy(np.ascontiguousarray(flat)), dim=1)
    ordered, order = values.numpy(), order.numpy()
    n = flat.shape[1]
    position = np.arange(1.0, n + 1.0)
    ranks = np.empty(flat.shape, np.float64)
    new_value = np.ones(n, bool)
    for row in range(flat.shape[0]):
        np.not_equal(ordered[row, 1:], ordered[row, :-1], out=new_value[1:])
        if new_value.all():                                   # no ties: rank = position
            ranks[row, order[row]] = position
            continue
        starts = np.flatnonzero(new_value)                    # first index of each run of ties
        ends = np.append(starts[1:], n)                       # one past its last
        ranks[row, order[row]] = np.repeat((starts + ends + 1) * 0.5, ends - starts)
    return ranks


class SSIMReference:
    """A fixed batch of reference maps, compared item by item with other batches by SSIM.

    The options are checked and the reference maps validated and converted once (per working
    precision), then reused by every call, e.g. the trained model's maps against the maps of each
    randomization state. ``SSIMReference(ref, **options)(maps)`` equals
    ``ssim(ref, maps, **options)`` exactly.

    Args:
        maps: reference batch ``(B, *spatial)``.
        data_range, preset, win_size, gaussian_weights, sigma, use_sample_covariance, K1, K2,
            constant, precision, workers: as :func:`ssim`.
    """

    def __init__(self, maps: Any, data_range: Optional[float] = None, *,
                 preset: Optional[str] = None, win_size: Optional[int] = None,
                 gaussian_weights: bool = False, sigma: float = 1.5,
                 use_sample_covariance: bool = True, K1: float = 0.01, K2: float = 0.03,
                 constant: str = "nan", precision: Optional[str] = None,
                 workers: Optional[int] = None):
        self.options = SSIMOptions(data_range, win_size=win_size,
                                   gaussian_weights=gaussian_weights, sigma=sigma,
                                   use_sample_covariance=use_sample_covariance, K1=K1, K2=K2,
                                   preset=preset)
        if constant not in ("nan", "compute"):
            raise ValueError(f"constant must be 'nan' or 'compute', got {constant!r}")
        self.maps = as_batch(maps, "maps")
        _check_extent(self.maps.shape[1:], self.options)
        self.constant = constant
        self.precision = precision
        self.workers = workers
        self.flags = _map_flags(self.maps, constant)
        self._kernel = SSIMKernel(self.options, self.maps.shape[1:])
        self._prepared: Dict[Any, np.ndarray] = {}  # the reference maps per working precision

    def _reference_for(self, float_type) -> np.ndarray:
        """The reference maps prepared in working precision (converted once)."""
        if float_type not in self._prepared:
            self._prepared[float_type] = self._kernel.prepare(self.maps, float_type)
        return self._prepared[float_type]

    def __call__(self, maps: Any, return_reasons: bool = False) -> _Result:
        """SSIM of reference item ``i`` and ``maps[i]`` for every ``i``: float64 ``(B,)``."""
        other = as_batch(maps, "maps")
        check_same_shape(self.maps, other, "reference maps", "maps")
        float_type = _precision(self.precision, self.maps, other)
        reasons, defined = _itemwise_reasons(self.flags, _map_flags(other, self.constant))
        values = np.full(other.shape[0], np.nan)
        if defined.size:
            reference = self._reference_for(float_type)
            with numba_threads(self.workers):
                values[defined] = self._kernel.means(reference, defined,
                                                     self._kernel.prepare(other, float_type),
                                                     defined)
        return finish(values, reasons, return_reasons)


def _standardized_ranks(flat: np.ndarray) -> np.ndarray:
    """Average ranks of each row, centred and scaled to unit norm (float64 ``(n, N)``); rows are
    ranked in chunks of about 4 M values to bound the temporaries."""
    out = np.empty(flat.shape, np.float64)
    step = max(1, (1 << 22) // max(flat.shape[1], 1))
    for lo in range(0, flat.shape[0], step):
        ranks = average_ranks(flat[lo:lo + step])
        ranks -= ranks.mean(axis=1, keepdims=True)
        norms = np.sqrt(np.einsum("ij,ij->i", ranks, ranks))
        with np.errstate(invalid="ignore", divide="ignore"):
            ranks /= norms[:, None]
        out[lo:lo + step] = ranks
    return out


def spearman_pairs(maps_a: Any, maps_b: Any, pairs: Any, *, return_reasons: bool = False) -> _Result:
    """Spearman rank correlation of ``maps_a[i]`` and ``maps_b[j]`` for each row ``(i, j)`` of
    ``pairs``; each map is ranked once however many pairs it is in.

    Returns:
        float64 ``(M,)``; NaN with a reason when either map is constant or contains NaN.
    """
    a = as_batch(maps_a, "maps_a")
    same = maps_b is maps_a
    b = a if same else as_batch(maps_b, "maps_b")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"maps_a items have shape {a.shape[1:]} but maps_b items {b.shape[1:]}")
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    flags_a = _map_flags(a, "nan")
    flags_b = flags_a if same else _map_flags(b, "nan")
    reasons = _pair_reasons(flags_a, flags_b, pairs)
    values = np.full(pairs.shape[0], np.nan)
    defined = np.flatnonzero([r is None for r in reasons])
    if defined.size:
        used_a = np.unique(pairs[defined].ravel()) if same else np.unique(pairs[defined, 0])
        used_b = used_a if same else np.unique(pairs[defined, 1])
        ranks_a = _standardized_ranks(a[used_a].reshape(used_a.size, -1))
        ranks_b = ranks_a if same else _standardized_ranks(b[used_b].reshape(used_b.size, -1))
        pos_a = np.searchsorted(used_a, pairs[defined, 0])
        pos_b = np.searchsorted(used_b, pairs[defined, 1])
        step = max(1, (1 << 22) // max(ranks_a.shape[1], 1))
        for lo in range(0, defined.size, step):
            ia, ib = pos_a[lo:lo + step], pos_b[lo:lo + step]
            values[defined[lo:lo + step]] = np.einsum("ij,ij->i", ranks_a[ia], ranks_b[ib])
    return finish(np.clip(values, -1.0, 1.0), reasons, return_reasons)


def spearman(maps_a: Any, maps_b: Any, *, return_reasons: bool = False) -> _Result:
    """Per-item Spearman rank correlation of the flattened maps (``scipy.stats.spearmanr``).

    Ties get average ranks. NaN with a reason when either map is constant or contains NaN.

    Returns:
        float64 ``(B,)`` in [-1, 1].
    """
    a = as_batch(maps_a, "maps_a")
    b = as_batch(maps_b, "maps_b")
    check_same_shape(a, b, "maps_a", "maps_b")
    index = np.arange(a.shape[0])
    return spearman_pairs(a, b, np.stack([index, index], 1), return_reasons=return_reasons)


class SpearmanReference:
    """A fixed batch of reference maps, compared item by item with other batches by Spearman.

    The reference maps are ranked once and the ranks reused by every call (e.g. the trained
    model's maps against the maps of each randomization state), so a call ranks only the new
    maps. ``SpearmanReference(ref)(maps)`` equals ``spearman(ref, maps)`` exactly.

    Args:
        maps: reference batch ``(B, *spatial)``.
    """

    def __init__(self, maps: Any):
        self.maps = as_batch(maps, "maps")
        self.flags = _map_flags(self.maps, "nan")
        self._ranks: Optional[np.ndarray] = None        # ranked on first use

    def __call__(self, maps: Any, return_reasons: bool = False) -> _Result:
        """Spearman correlation of reference item ``i`` and ``maps[i]``: float64 ``(B,)``."""
        other = as_batch(maps, "maps")
        check_same_shape(self.maps, other, "reference maps", "maps")
        reasons, defined = _itemwise_reasons(self.flags, _map_flags(other, "nan"))
        values = np.full(other.shape[0], np.nan)
        if defined.size:
            if self._ranks is None:
                usable = self.flags[0] & ~self.flags[1]
                self._ranks = np.zeros((self.maps.shape[0], self.maps[0].size))
                self._ranks[usable] = _standardized_ranks(
                    self.maps[usable].reshape(int(usable.sum()), -1))
            ranks = _standardized_ranks(other[defined].reshape(defined.size, -1))
            values[defined] = np.einsum("ij,ij->i", self._ranks[defined], ranks)
        return finish(np.clip(values, -1.0, 1.0), reasons, return_reasons)


class SSIM:
    """SSIM as a configurable callable (buildable from a bundle config with ``_target_``).

    ``SSIM(preset="paper")(maps_a, maps_b)`` -> float64 ``(B,)``; keyword arguments as :func:`ssim`.
    """

    def __init__(self, data_range: Optional[float] = None, *, preset: Optional[str] = None,
                 **options: Any):
        self.options = SSIMOptions(data_range, preset=preset,
                                   **{k: v for k, v in options.items()
                                      if k in ("win_size", "gaussian_weights", "sigma",
                                               "use_sample_covariance", "K1", "K2")})
        self.extra = {k: v for k, v in options.items() if k in ("constant", "precision", "workers")}

    def __call__(self, maps_a: Any, maps_b: Any, return_reasons: bool = False) -> _Result:
        return ssim(maps_a, maps_b, **self.options.skimage_kwargs(), **self.extra,
                    return_reasons=return_reasons)

    def to_dict(self) -> Dict[str, Any]:
        return self.options.to_dict()

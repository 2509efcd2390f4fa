"""Similarity of two saliency maps on their 2D or 3D grid: SSIM and Spearman rank correlation, batched.

SSIM (:func:`ssim`) is the mean structural similarity of Wang et al. 2004 computed exactly as
``skimage.metrics.structural_similarity`` (scikit-image 0.26) does for one pair of grey images
(never on flattened maps): local means, variances and covariance under a ``win_size``-wide
uniform window (or a Gaussian of ``sigma``), ``S = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)
(vx + vy + C2))`` with ``C1 = (K1 R)^2``, ``C2 = (K2 R)^2``, ``R = data_range``, averaged over the
grid after cropping ``(win_size - 1) // 2`` pixels on every side. Every parameter that changes the
number is explicit; ``preset="paper"`` is the study's choice (Arun et al. 2021): scikit-image's
defaults (7-pixel uniform window, sample covariance, K1 0.01, K2 0.03) with ``data_range=2``,
which scikit-image of 2020 used implicitly for float maps in [0, 1].

Batching: the local statistics of each map are computed once and reused across every pair the map
is in (:func:`ssim_pairs`), so the different-image baseline (50 partners per map) filters each pair
only once (its product) instead of five times.

Spearman (:func:`spearman`) is the Pearson correlation of the average ranks of the flattened maps
(``scipy.stats.spearmanr``). Binder et al. (CVPR 2023) showed that SSIM-based randomization tests
can be passed by uninformative maps; a rank correlation beside SSIM is the cross-check.

Undefined items (NaN in a map, and by default a constant map: the study's min-max normalisation
turned those into NaN, and it dropped them) are NaN with a reason, see
:mod:`SaliencyTrustLib.metrics.localization` for the ``return_reasons`` convention.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
from scipy import ndimage

from ._common import (REASON_CONSTANT_MAP, REASON_NAN_MAP, Reasons, as_batch, check_same_shape,
                      constant_rows, finish, finite_rows)

__all__ = ["ssim", "ssim_pairs", "SSIMReference", "spearman", "spearman_pairs", "SSIMOptions", "PAPER_SSIM", "SSIM"]

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


def _filter(array: np.ndarray, options: SSIMOptions, pad: int) -> np.ndarray:
    """Window-average ``array`` (batch axis 0) over its spatial axes and crop ``pad`` per side.

    The filters and the ``reflect`` border are scikit-image's (``ndimage.uniform_filter`` /
    ``skimage.filters.gaussian``, i.e. ``ndimage.gaussian_filter``), with a window of 1 (sigma 0)
    along the batch axis, which ndimage skips: each item is filtered exactly as alone.
    """
    spatial = array.ndim - 1
    if options.gaussian_weights:
        out = ndimage.gaussian_filter(array, sigma=(0.0,) + (options.sigma,) * spatial,
                                      mode="reflect", truncate=options.truncate)
    else:
        out = ndimage.uniform_filter(array, size=(1,) + (options.win_size,) * spatial,
                                     mode="reflect")
    if pad:
        out = out[(slice(None),) + (slice(pad, -pad),) * spatial]
    return np.ascontiguousarray(out)


class _MapStats:
    """Per-map local statistics (cropped), computed once and shared by every pair of the map.

    ``mean`` = ux, ``mean2`` = ux ** 2, ``var`` = ``cov_norm * (filter(x * x) - ux * ux)``: the same
    expressions, in the same order and precision, as scikit-image evaluates them per pair.
    """

    def __init__(self, maps: np.ndarray, options: SSIMOptions, float_type, cov_norm: float,
                 workers: int = 1):
        self.pad = (options.win_size - 1) // 2
        shape = (maps.shape[0],) + tuple(n - 2 * self.pad for n in maps.shape[1:])
        self.mean = np.empty(shape, float_type)
        self.mean2 = np.empty(shape, float_type)
        self.var = np.empty(shape, float_type)
        step = _chunk(maps[0].size)
        norm = float_type(cov_norm)

        def run(lo: int) -> None:
            block = maps[lo:lo + step].astype(float_type, copy=False)
            mean = _filter(block, options, self.pad)
            mean_sq = _filter(block * block, options, self.pad)
            self.mean[lo:lo + step] = mean
            self.mean2[lo:lo + step] = mean ** 2
            self.var[lo:lo + step] = norm * (mean_sq - mean * mean)

        _parallel(run, range(0, maps.shape[0], step), workers)


def _parallel(fn, starts, workers: int) -> None:
    """Run ``fn(start)`` for each chunk start, in ``workers`` threads (numpy and ndimage release
    the GIL; chunks write disjoint slices of preallocated outputs)."""
    starts = list(starts)
    if workers <= 1 or len(starts) <= 1:
        for start in starts:
            fn(start)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fn, starts))


def default_workers() -> int:
    """Threads for the batched similarity computations (up to 4)."""
    return max(1, min(4, os.cpu_count() or 1))


def _chunk(item_size: int) -> int:
    """Items per chunk: about 256 k values, so the temporaries of a chunk stay in cache."""
    return max(1, (1 << 18) // max(item_size, 1))


def _float_type(a: np.ndarray, b: np.ndarray):
    """scikit-image's working precision: float32 when both inputs are float32 (or smaller), else float64."""
    small = (np.float16, np.float32, np.uint8, np.int8, np.bool_)
    return np.float32 if a.dtype.type in small and b.dtype.type in small else np.float64


def _map_flags(maps: np.ndarray, constant: str) -> Tuple[np.ndarray, np.ndarray]:
    """Per map: (finite, constant) flags; constant flags all False when ``constant="compute"``."""
    flat = maps.reshape(maps.shape[0], -1)
    finite = finite_rows(flat)
    const = constant_rows(flat) if constant == "nan" else np.zeros(flat.shape[0], bool)
    return finite, const


def _pair_reasons(flags_a, flags_b, pairs: np.ndarray) -> List[Optional[str]]:
    finite = flags_a[0][pairs[:, 0]] & flags_b[0][pairs[:, 1]]
    const = flags_a[1][pairs[:, 0]] | flags_b[1][pairs[:, 1]]
    return [REASON_NAN_MAP if not finite[i] else (REASON_CONSTANT_MAP if const[i] else None)
            for i in range(pairs.shape[0])]


def ssim_pairs(maps_a: Any, maps_b: Any, pairs: Any, data_range: Optional[float] = None, *,
               preset: Optional[str] = None, win_size: Optional[int] = None,
               gaussian_weights: bool = False, sigma: float = 1.5,
               use_sample_covariance: bool = True, K1: float = 0.01, K2: float = 0.03,
               constant: str = "nan", precision: Optional[str] = None,
               return_reasons: bool = False, workers: Optional[int] = None) -> _Result:
    """SSIM of ``maps_a[i]`` and ``maps_b[j]`` for each row ``(i, j)`` of ``pairs``.

    Args:
        maps_a, maps_b: batches ``(A, *spatial)`` and ``(B, *spatial)`` on the same grid (may be
            the same object: the statistics are then computed once).
        pairs: integer array ``(M, 2)`` of indices into ``maps_a`` and ``maps_b``.
        data_range, preset, win_size, gaussian_weights, sigma, use_sample_covariance, K1, K2:
            see :class:`SSIMOptions`.
        constant: ``"nan"`` (default): a pair with a constant map is NaN with a reason;
            ``"compute"``: scikit-image's value.
        precision: ``"float32"``/``"float64"``; default: scikit-image's (float32 when both inputs
            are float32, else float64).
        return_reasons: also return one reason (or None) per pair.
        workers: threads over chunks of maps and pairs (default up to 4); no effect on values.

    Returns:
        float64 ``(M,)``.
    """
    options = SSIMOptions(data_range, win_size=win_size, gaussian_weights=gaussian_weights,
                          sigma=sigma, use_sample_covariance=use_sample_covariance, K1=K1, K2=K2,
                          preset=preset)
    if constant not in ("nan", "compute"):
        raise ValueError(f"constant must be 'nan' or 'compute', got {constant!r}")
    a = as_batch(maps_a, "maps_a")
    same = maps_b is maps_a
    b = a if same else as_batch(maps_b, "maps_b")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"maps_a items have shape {a.shape[1:]} but maps_b items {b.shape[1:]}; "
                         "SSIM compares maps on the same grid")
    if any(n < options.win_size for n in a.shape[1:]):
        raise ValueError(f"ssim: win_size {options.win_size} exceeds the map extent "
                         f"{a.shape[1:]}; pass a smaller odd win_size")
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.size and (pairs[:, 0].min() < 0 or pairs[:, 0].max() >= a.shape[0]
                       or pairs[:, 1].min() < 0 or pairs[:, 1].max() >= b.shape[0]):
        raise ValueError("ssim_pairs: pair indices out of range of maps_a / maps_b")
    float_type = {"float32": np.float32, "float64": np.float64, None: None}[precision] \
        or _float_type(a, b)

    flags_a = _map_flags(a, constant)
    flags_b = flags_a if same else _map_flags(b, constant)
    reasons = _pair_reasons(flags_a, flags_b, pairs)
    values = np.full(pairs.shape[0], np.nan)
    defined = np.flatnonzero([r is None for r in reasons])
    if defined.size:
        if same:  # one set of statistics for every map used on either side
            used_a = used_b = np.unique(pairs[defined].ravel())
        else:
            used_a, used_b = np.unique(pairs[defined, 0]), np.unique(pairs[defined, 1])
        norm = _cov_norm(options, a.ndim - 1)
        workers = default_workers() if workers is None else max(1, int(workers))
        stats_a = _MapStats(a[used_a], options, float_type, norm, workers)
        stats_b = stats_a if same else _MapStats(b[used_b], options, float_type, norm, workers)
        pos_a = np.searchsorted(used_a, pairs[defined, 0])
        pos_b = np.searchsorted(used_b, pairs[defined, 1])
        values[defined] = _ssim_from_stats(a, b, used_a, used_b, pos_a, pos_b, stats_a, stats_b,
                                           options, float_type, workers)
    return finish(values, reasons, return_reasons)


def _as_slice(index: np.ndarray):
    """A run of consecutive indices as a slice (numpy then returns views, not copies)."""
    if index.size and index[-1] - index[0] == index.size - 1 and (
            index.size == 1 or bool(np.all(np.diff(index) == 1))):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def _take(used: np.ndarray, index):
    """``used[index]`` as a slice when it is a run of consecutive map indices."""
    return _as_slice(used[index])


def _cov_norm(options: SSIMOptions, ndim: int) -> float:
    n_window = options.win_size ** ndim
    return n_window / (n_window - 1.0) if options.use_sample_covariance else 1.0


def _ssim_from_stats(a, b, used_a, used_b, pos_a, pos_b, stats_a, stats_b, options, float_type,
                     workers: int = 1) -> np.ndarray:
    cast = float_type
    norm = cast(_cov_norm(options, a.ndim - 1))
    c1 = cast((options.K1 * options.data_range) ** 2)
    c2 = cast((options.K2 * options.data_range) ** 2)
    out = np.empty(pos_a.size, np.float64)
    step = _chunk(a[0].size)
    # Pairs sharing a map reuse its statistics; per pair only the product x * y is filtered.
    # The arithmetic below is scikit-image's, in the same order, done in place on small chunks.
    def run(lo: int) -> None:
        ia, ib = _as_slice(pos_a[lo:lo + step]), _as_slice(pos_b[lo:lo + step])
        x = a[_take(used_a, ia)].astype(cast, copy=False)
        y = b[_take(used_b, ib)].astype(cast, copy=False)
        uxy = _filter(x * y, options, stats_a.pad)
        ux, uy = stats_a.mean[ia], stats_b.mean[ib]
        prod = ux * uy
        np.subtract(uxy, prod, out=uxy)
        np.multiply(uxy, norm, out=uxy)                 # vxy
        np.multiply(uxy, 2, out=uxy)
        np.add(uxy, c2, out=uxy)                        # A2 = 2 vxy + C2
        np.multiply(prod, 2, out=prod)
        np.add(prod, c1, out=prod)                      # A1 = 2 ux uy + C1
        np.multiply(prod, uxy, out=prod)                # A1 A2
        b1 = stats_a.mean2[ia] + stats_b.mean2[ib]
        np.add(b1, c1, out=b1)                          # B1 = ux^2 + uy^2 + C1
        b2 = stats_a.var[ia] + stats_b.var[ib]
        np.add(b2, c2, out=b2)                          # B2 = vx + vy + C2
        np.multiply(b1, b2, out=b1)                     # D
        np.divide(prod, b1, out=prod)                   # S
        out[lo:lo + step] = prod.reshape(prod.shape[0], -1).mean(axis=1, dtype=np.float64)

    _parallel(run, range(0, pos_a.size, step), workers)
    return out


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
        precision: working float type, default as scikit-image (float32 for float32 inputs).
        return_reasons: also return one reason (or None) per item.
        workers: threads over chunks (default up to 4); no effect on the values.

    Returns:
        float64 ``(B,)``: item ``i`` equals ``skimage.metrics.structural_similarity(maps_a[i],
        maps_b[i], **options)`` (within 1e-5; float64 inputs to rounding).

    Example:
        >>> import numpy as np
        >>> from SaliencyTrustLib.metrics import ssim
        >>> a = np.random.default_rng(0).random((4, 64, 64), dtype=np.float32)
        >>> ssim(a, a, preset="paper").round(6).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    a = as_batch(maps_a, "maps_a")
    b = as_batch(maps_b, "maps_b")
    check_same_shape(a, b, "maps_a", "maps_b")
    index = np.arange(a.shape[0])
    return ssim_pairs(a, b, np.stack([index, index], 1), data_range, preset=preset,
                      win_size=win_size, gaussian_weights=gaussian_weights, sigma=sigma,
                      use_sample_covariance=use_sample_covariance, K1=K1, K2=K2,
                      constant=constant, precision=precision, return_reasons=return_reasons,
                      workers=workers)


def average_ranks(flat: np.ndarray) -> np.ndarray:
    """1-based ranks of each row of ``(n, N)``, ties sharing their average rank
    (``scipy.stats.rankdata(flat, axis=1)``, one unstable argsort per row: ties are averaged, so
    their order does not matter)."""
    n = flat.shape[1]
    order = np.argsort(flat, axis=1)
    ordered = np.take_along_axis(flat, order, axis=1)
    position = np.broadcast_to(np.arange(n), flat.shape)
    first = np.ones(flat.shape, bool)
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=first[:, 1:])
    last = np.ones(flat.shape, bool)
    last[:, :-1] = first[:, 1:]
    start = np.maximum.accumulate(np.where(first, position, 0), axis=1)
    end = np.minimum.accumulate(np.where(last, position, n)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty(flat.shape, np.float64)
    np.put_along_axis(ranks, order, (start + end) * 0.5 + 1.0, axis=1)
    return ranks


class SSIMReference:
    """A fixed batch of reference maps, compared item by item with other batches by SSIM.

    The reference maps' local statistics are computed once (per working precision) and reused by
    every call, e.g. the trained model's maps against the maps of each randomization state.
    ``SSIMReference(ref, **options)(maps)`` equals ``ssim(ref, maps, **options)``.

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
        if any(n < self.options.win_size for n in self.maps.shape[1:]):
            raise ValueError(f"ssim: win_size {self.options.win_size} exceeds the map extent "
                             f"{self.maps.shape[1:]}; pass a smaller odd win_size")
        self.constant = constant
        self.precision = precision
        self.workers = default_workers() if workers is None else max(1, int(workers))
        self.flags = _map_flags(self.maps, constant)
        self._stats: Dict[Any, _MapStats] = {}

    def _stats_for(self, float_type) -> "_MapStats":
        if float_type not in self._stats:
            self._stats[float_type] = _MapStats(self.maps, self.options, float_type,
                                                _cov_norm(self.options, self.maps.ndim - 1),
                                                self.workers)
        return self._stats[float_type]

    def __call__(self, maps: Any, return_reasons: bool = False) -> _Result:
        """SSIM of reference item ``i`` and ``maps[i]`` for every ``i``: float64 ``(B,)``."""
        other = as_batch(maps, "maps")
        check_same_shape(self.maps, other, "reference maps", "maps")
        float_type = {"float32": np.float32, "float64": np.float64, None: None}[self.precision] \
            or _float_type(self.maps, other)
        index = np.arange(other.shape[0])
        reasons = _pair_reasons(self.flags, _map_flags(other, self.constant),
                                np.stack([index, index], 1))
        values = np.full(other.shape[0], np.nan)
        defined = np.flatnonzero([r is None for r in reasons])
        if defined.size:
            stats_a = self._stats_for(float_type)
            stats_b = _MapStats(other[defined], self.options, float_type,
                                _cov_norm(self.options, other.ndim - 1), self.workers)
            values[defined] = _ssim_from_stats(
                self.maps, other, index, defined, defined, np.arange(defined.size), stats_a,
                stats_b, self.options, float_type, self.workers)
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

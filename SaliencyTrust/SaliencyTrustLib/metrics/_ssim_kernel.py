"""The SSIM kernel: one compiled (numba) pass per band of output rows, in float64, on all cores.

What it computes is scikit-image's mean SSIM (see :mod:`SaliencyTrustLib.metrics.similarity`);
how it computes it:

* Only the cropped grid. scikit-image filters the whole grid (``ndimage`` filters, ``reflect``
  borders) and then averages the SSIM map over the grid cropped by ``pad = (win_size - 1) // 2``
  values per side. A cropped value depends only on the input within ``radius`` of it (``radius =
  pad`` for the uniform window, ``int(truncate * sigma + 0.5)`` for the Gaussian one), so when
  ``radius <= pad`` no border value reaches the mean and the kernel reads the valid region only.
  When ``radius > pad`` (a Gaussian wider than the window) the maps are first padded by
  ``radius - pad`` in numpy's ``symmetric`` mode, which is ``ndimage``'s ``reflect``.
* One pass. A task is one pair of maps, one output plane (3D; the single plane in 2D) and a band
  of output rows. It reads its input once, forms ``x, y, x^2 + y^2, xy`` and filters them along
  depth, rows and columns (separable taps: ``1 / win_size`` each, or the Gaussian's; along rows
  the uniform window is a running sum, the row entering minus the row leaving), then
  evaluates SSIM per value and adds it up; the variances enter SSIM only as ``vx + vy``, so four
  filtered quantities suffice. Everything after reading the maps is float64, so the values equal
  scikit-image's float64 result to about 1e-15 and its float32 result to its own float32 rounding
  (about 1e-7).
* Deterministic. No fast-math (the compiler may not reorder floating-point operations); each
  row of SSIM values is summed in a fixed order, each task runs start to end on one thread and
  its sum is added to its pair's total in task order, so the values never depend on the number
  of threads, the process or the run.

The first call compiles the kernel (a few seconds); numba caches the machine code next to this
file (``__pycache__``), so later processes load it.

Arrays: batches ``(B, *spatial)``, 2D ``(B, H, W)`` or 3D ``(B, D, H, W)``; numpy in, numpy out.
"""

from __future__ import annotations

import math
import os
import threading
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence, Tuple

import numba
import numpy as np

# numba's own thread pool, not its OpenMP layer: torch already runs an OpenMP runtime in this
# process, and a second one (numba's, from the system's libgomp) made a 2-rank torchrun cohort run
# 3.5x slower and changed torch's saliency maps in the last bits. A user's NUMBA_THREADING_LAYER
# still wins. The workqueue layer does not take concurrent launches: _LAUNCH serializes them.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
_LAUNCH = threading.Lock()

#: Output values per task (a band of rows): the task's float64 work arrays stay in the L2 cache.
TASK_VALUES = 1 << 15


@numba.njit(cache=True, nogil=True)
def _fixed_order_sum(values):  # pragma: no cover - compiled
    """Sum of a 1D array in eight interleaved partial sums, added in a fixed order.

    Written out rather than left to a reassociating (fast-math) vectorizer, whose order is the
    compiler's choice; eight independent sums still run in vector registers.
    """
    partial = np.zeros(8)
    n = values.shape[0]
    stop = n - n % 8
    for j in range(0, stop, 8):
        for lane in range(8):
            partial[lane] += values[j + lane]
    for j in range(stop, n):
        partial[j - stop] += values[j]
    return ((partial[0] + partial[1]) + (partial[2] + partial[3])) + (
        (partial[4] + partial[5]) + (partial[6] + partial[7]))


@numba.njit(parallel=True, cache=True, nogil=True)
def _ssim_task_sums(maps_a, maps_b, index_a, index_b, offset_d, offset, taps_d, taps_h, taps_w,
                    c1, c2, cov_norm, out_w, uniform, task_pair, task_plane, task_row0,
                    task_row1, sums):  # pragma: no cover - compiled; its results are tested through ssim()
    """Sum of the SSIM map over each task's output values, into ``sums[task]``.

    ``maps_a``, ``maps_b``: ``(B, D, H, W)`` (2D maps as ``D = 1``); pair ``m`` compares
    ``maps_a[index_a[m]]`` with ``maps_b[index_b[m]]``. Output value ``(z, r, c)`` reads input
    ``[z + offset_d : z + offset_d + len(taps_d), r + offset : ..., c + offset : ...]``.
    ``c1``, ``c2``: SSIM's ``(K1 R)^2``, ``(K2 R)^2``; ``cov_norm``: ``NP / (NP - 1)`` or 1;
    ``uniform``: the taps are all equal (the rows are then summed as a running sum).
    """
    n_d = taps_d.shape[0]
    n_h = taps_h.shape[0]
    n_w = taps_w.shape[0]
    width = out_w + n_w - 1
    for task in numba.prange(task_pair.shape[0]):
        pair = task_pair[task]
        a = index_a[pair]
        b = index_b[pair]
        z = task_plane[task]
        row0 = task_row0[task]
        n_rows = task_row1[task] - row0
        rows_in = n_rows + n_h - 1
        # along depth: the four quantities, weighted (one plane of weight 1 for 2D maps)
        dx = np.zeros((rows_in, width))
        dy = np.zeros((rows_in, width))
        dsq = np.zeros((rows_in, width))
        dxy = np.zeros((rows_in, width))
        for k in range(n_d):
            weight = taps_d[k]
            for i in range(rows_in):
                # (sliced rather than indexed at offset + j: a plain j lets numba skip its
                # negative-index check, and the loop vectorizes)
                row_x = maps_a[a, z + offset_d + k, row0 + offset + i, offset:]
                row_y = maps_b[b, z + offset_d + k, row0 + offset + i, offset:]
                for j in range(width):
                    x = np.float64(row_x[j])
                    y = np.float64(row_y[j])
                    dx[i, j] += weight * x
                    dy[i, j] += weight * y
                    dsq[i, j] += weight * (x * x + y * y)
                    dxy[i, j] += weight * (x * y)
        hx = np.empty(width)
        hy = np.empty(width)
        hsq = np.empty(width)
        hxy = np.empty(width)
        ux = np.empty(out_w)
        uy = np.empty(out_w)
        usq = np.empty(out_w)
        uxy = np.empty(out_w)
        ssim_row = np.empty(out_w)
        total = 0.0
        for i in range(n_rows):
            # along rows (uniform window: a running sum, the row entering minus the row leaving)
            if uniform and i > 0:
                weight = taps_h[0]
                last = i + n_h - 1
                for j in range(width):
                    hx[j] += weight * (dx[last, j] - dx[i - 1, j])
                    hy[j] += weight * (dy[last, j] - dy[i - 1, j])
                    hsq[j] += weight * (dsq[last, j] - dsq[i - 1, j])
                    hxy[j] += weight * (dxy[last, j] - dxy[i - 1, j])
            else:
                hx[:] = 0.0
                hy[:] = 0.0
                hsq[:] = 0.0
                hxy[:] = 0.0
                for k in range(n_h):
                    weight = taps_h[k]
                    for j in range(width):
                        hx[j] += weight * dx[i + k, j]
                        hy[j] += weight * dy[i + k, j]
                        hsq[j] += weight * dsq[i + k, j]
                        hxy[j] += weight * dxy[i + k, j]
            # along columns
            ux[:] = 0.0
            uy[:] = 0.0
            usq[:] = 0.0
            uxy[:] = 0.0
            for k in range(n_w):
                weight = taps_w[k]
                for j in range(out_w):
                    ux[j] += weight * hx[j + k]
                    uy[j] += weight * hy[j + k]
                    usq[j] += weight * hsq[j + k]
                    uxy[j] += weight * hxy[j + k]
            # SSIM = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2))
            for j in range(out_w):
                mean_x = ux[j]
                mean_y = uy[j]
                squares = mean_x * mean_x + mean_y * mean_y
                cov = cov_norm * (uxy[j] - mean_x * mean_y)
                var_sum = cov_norm * (usq[j] - squares)
                ssim_row[j] = ((2.0 * mean_x * mean_y + c1) * (2.0 * cov + c2)) / (
                    (squares + c1) * (var_sum + c2))
            total += _fixed_order_sum(ssim_row)
        sums[task] = total


def default_threads() -> int:
    """Kernel threads when not given: ``OMP_NUM_THREADS`` when set (torchrun sets it per rank),
    else one per core."""
    try:
        wanted = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        wanted = numba.config.NUMBA_NUM_THREADS
    return max(1, min(wanted, numba.config.NUMBA_NUM_THREADS))


@contextmanager
def numba_threads(workers: Optional[int]) -> Iterator[None]:
    """Run the kernel with ``workers`` threads (``None``: :func:`default_threads`); numba's thread
    count is per calling thread, so concurrent callers do not disturb each other."""
    count = default_threads() if workers is None else max(
        1, min(int(workers), numba.config.NUMBA_NUM_THREADS))
    previous = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


class SSIMKernel:
    """SSIM of one set of options on maps of one spatial shape.

    Args:
        options: resolved ``SSIMOptions``.
        spatial: spatial shape of the maps (2 or 3 axes).

    Attributes:
        pad: values cropped per side of each spatial axis before averaging (scikit-image's).
        radius: half-width of the filter (``pad`` for the uniform window).
        taps: the 1D window weights (float64, summing to 1); ``uniform``: all equal.
        cropped: the cropped grid, the values SSIM is averaged over.
    """

    def __init__(self, options, spatial: Sequence[int]) -> None:
        self.ndim = len(spatial)
        self.pad = (options.win_size - 1) // 2
        if options.gaussian_weights:
            # scipy.ndimage._gaussian_kernel1d(sigma, 0, radius): gaussian_filter's weights
            self.radius = int(options.truncate * options.sigma + 0.5)
            x = np.arange(-self.radius, self.radius + 1, dtype=np.float64)
            taps = np.exp(-0.5 / (options.sigma * options.sigma) * x * x)
            self.taps = taps / taps.sum()
            self.uniform = False
        else:
            self.radius = self.pad
            self.taps = np.full(options.win_size, 1.0 / options.win_size)
            self.uniform = True
        self.extend = max(0, self.radius - self.pad)      # symmetric padding per side
        self.offset = max(0, self.pad - self.radius)      # first input read, after padding
        self.cropped = tuple(n - 2 * self.pad for n in spatial)
        n_window = options.win_size ** self.ndim
        self.cov_norm = n_window / (n_window - 1.0) if options.use_sample_covariance else 1.0
        self.c1 = (options.K1 * options.data_range) ** 2
        self.c2 = (options.K2 * options.data_range) ** 2

    def prepare(self, maps: np.ndarray, float_type) -> np.ndarray:
        """``maps`` as a C-contiguous ``(B, D, H, W)`` array of ``float_type`` (2D maps get
        ``D = 1``), padded by ``radius - pad`` per spatial side when the filter is wider than the
        window; no copy when nothing changes."""
        maps = np.ascontiguousarray(maps, dtype=float_type)
        if self.extend:
            maps = np.pad(maps, [(0, 0)] + [(self.extend, self.extend)] * self.ndim,
                          mode="symmetric")
        return maps[:, None] if self.ndim == 2 else maps

    def _tasks(self, n_pairs: int) -> Tuple[np.ndarray, ...]:
        """(pair, plane, first row, end row) of every task: each pair's output planes, cut in
        bands of about :data:`TASK_VALUES` values."""
        planes = 1 if self.ndim == 2 else self.cropped[0]
        out_h, out_w = self.cropped[-2:]
        band = max(1, min(out_h, math.ceil(TASK_VALUES / out_w)))
        starts = np.arange(0, out_h, band)
        per_pair = planes * starts.size
        pair = np.repeat(np.arange(n_pairs), per_pair)
        plane = np.tile(np.repeat(np.arange(planes), starts.size), n_pairs)
        row0 = np.tile(starts, n_pairs * planes)
        row1 = np.minimum(row0 + band, out_h)
        return pair, plane, row0, row1

    def means(self, prepared_a: np.ndarray, index_a: np.ndarray, prepared_b: np.ndarray,
              index_b: np.ndarray) -> np.ndarray:
        """Mean SSIM of ``prepared_a[index_a[m]]`` and ``prepared_b[index_b[m]]`` for every
        ``m`` (float64), the maps from :meth:`prepare`."""
        index_a = np.ascontiguousarray(index_a, dtype=np.int64)
        index_b = np.ascontiguousarray(index_b, dtype=np.int64)
        pair, plane, row0, row1 = self._tasks(index_a.size)
        sums = np.empty(pair.size, np.float64)
        taps_d = np.ones(1) if self.ndim == 2 else self.taps
        offset_d = 0 if self.ndim == 2 else self.offset
        with _LAUNCH:                                     # one launch at a time (workqueue)
            _ssim_task_sums(prepared_a, prepared_b, index_a, index_b, offset_d, self.offset,
                            taps_d, self.taps, self.taps, self.c1, self.c2, self.cov_norm,
                            self.cropped[-1], self.uniform, pair, plane, row0, row1, sums)
        totals = np.zeros(index_a.size, np.float64)
        np.add.at(totals, pair, sums)                     # in task order: deterministic
        return totals / float(math.prod(self.cropped))

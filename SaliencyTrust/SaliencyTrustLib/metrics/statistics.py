"""Summaries of per-item metric values: mean, median, IQR and a seeded bootstrap 95% CI.

NaN items (undefined metric values, see :mod:`SaliencyTrustLib.metrics`) are dropped from every
statistic and **counted** (``n_undefined``), never silently averaged.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from ._common import count_reasons, to_numpy

__all__ = ["summarize", "bootstrap_ci"]


def bootstrap_ci(values: Any, *, n_resamples: int = 10000, level: float = 0.95, seed: int = 0,
                 statistic: str = "mean") -> tuple:
    """Percentile bootstrap confidence interval of the mean (or median) of the finite values.

    Args:
        values: 1-D values; NaN dropped.
        n_resamples: bootstrap resamples (with replacement, same size as the data).
        level: confidence level, e.g. 0.95 for the 2.5th-97.5th percentiles.
        seed: seed of ``numpy.random.default_rng`` (same seed, same interval).
        statistic: ``"mean"`` or ``"median"``.

    Returns:
        ``(low, high)`` floats; ``(nan, nan)`` when no finite value.
    """
    data = np.asarray(to_numpy(values, "values"), dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if data.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    reduce = np.mean if statistic == "mean" else np.median
    step = max(1, 2_000_000 // max(data.size, 1))      # bound the memory of the index block
    for lo in range(0, n_resamples, step):
        hi = min(n_resamples, lo + step)
        idx = rng.integers(0, data.size, size=(hi - lo, data.size))
        stats[lo:hi] = reduce(data[idx], axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarize(values: Any, reasons: Optional[Sequence[Optional[str]]] = None, *,
              n_resamples: int = 10000, level: float = 0.95, seed: int = 0) -> Dict[str, Any]:
    """Distribution of per-item values, as reported for each method and criterion.

    Args:
        values: per-item values (NaN = undefined).
        reasons: optional per-item reasons from a metric's ``return_reasons=True``; counted.
        n_resamples, level, seed: bootstrap settings (:func:`bootstrap_ci` of the mean).

    Returns:
        dict with ``n`` (items), ``n_valid``, ``n_undefined``, ``undefined_reasons``
        ({reason: count}), ``mean``, ``std`` (ddof 1), ``median``, ``q1``, ``q3``, ``iqr``
        (numpy's linear percentiles), ``min``, ``max``, ``ci_low``, ``ci_high``, ``ci_level``,
        ``ci_method`` and ``ci_seed``. Statistics of no valid item are NaN.
    """
    data = np.asarray(to_numpy(values, "values"), dtype=np.float64).ravel()
    finite = data[np.isfinite(data)]
    nan = float("nan")
    out: Dict[str, Any] = dict(n=int(data.size), n_valid=int(finite.size),
                               n_undefined=int(data.size - finite.size))
    if reasons is not None:
        if len(reasons) != data.size:
            raise ValueError(f"reasons has {len(reasons)} entries for {data.size} values")
        out["undefined_reasons"] = count_reasons(reasons)
    else:
        out["undefined_reasons"] = ({"undefined (NaN)": out["n_undefined"]}
                                    if out["n_undefined"] else {})
    if finite.size:
        q1, median, q3 = np.percentile(finite, [25, 50, 75])
        low, high = bootstrap_ci(finite, n_resamples=n_resamples, level=level, seed=seed)
        out.update(mean=float(finite.mean()),
                   std=float(finite.std(ddof=1)) if finite.size > 1 else nan,
                   median=float(median), q1=float(q1), q3=float(q3), iqr=float(q3 - q1),
                   min=float(finite.min()), max=float(finite.max()), ci_low=low, ci_high=high)
    else:
        out.update(mean=nan, std=nan, median=nan, q1=nan, q3=nan, iqr=nan, min=nan, max=nan,
                   ci_low=nan, ci_high=nan)
    out.update(ci_level=level, ci_method=f"percentile bootstrap of the mean, {n_resamples} resamples",
               ci_seed=seed)
    return out

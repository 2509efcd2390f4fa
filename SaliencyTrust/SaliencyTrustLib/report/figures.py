"""The study's figures for one cohort, drawn with matplotlib from ``results.json`` (PNG bytes).

Each function takes the results dict (and the results folder, for the gallery's arrays) and returns
PNG bytes, or None when the run did not compute what the figure shows. Colours: one per method,
the same in every figure; baselines grey / dashed.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

#: Figure id -> (title, caption) in the report's order. The HTML promises exactly these ids.
FIGURES = {
    "auprc": ("Localization utility: AUPRC per image",
              "Box plots of the per-image AUPRC of each method (trained model, coloured) next to the same method "
              "on the fully randomized model (grey), and the average-mask baseline (first box, dashed line: its mean)."),
    "randomization": ("Sensitivity to cascading weight randomization",
                      "Mean SSIM (left) and Spearman rank correlation (right) between the map of each randomized state "
                      "and the original map, top-down; dashed: each method's different-image SSIM baseline. A method "
                      "passes when its SSIM curve falls below its baseline at some state."),
    "repeatability": ("Repeatability: two models of one architecture",
                      "Per-image SSIM between maps of two independently trained models of the same architecture. "
                      "Red bars: each method's different-image baseline (a method passes above it); dashed grey: "
                      "the study's localization-network SSIM (other data, for scale)."),
    "reproducibility": ("Reproducibility: two architectures",
                        "Per-image SSIM between maps of two architectures. Red bars: each method's different-image "
                        "baseline (a method passes above it); dashed grey: the study's localization networks."),
    "beyond": ("Beyond the study: does the map show what the model uses?",
               "Per-image numbers of the criteria beyond the study (one panel each, methods coloured): AUPRC against "
               "the known shortcut region; SSIM to the map of the model trained on permuted labels (lower passes); "
               "insertion minus deletion area (higher passes); SSIM to the clean map under input noise / shift "
               "(the worse per image). Red bars: each method's baseline (the same method on the fully randomized "
               "model; the different-image SSIM; the random pixel order)."),
    "gallery": ("Example images",
                "Input with the ground truth outlined (red), then each method's map on the trained model (top row "
                "of each study) and on the fully randomized model (bottom row)."),
}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def method_colors(methods: List[str]) -> Dict[str, Any]:
    """One stable colour per method (tab10 order)."""
    plt = _plt()
    palette = [plt.get_cmap("tab10")(i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]  # no grey: grey means baseline
    return {m: palette[i % len(palette)] for i, m in enumerate(methods)}


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buffer.getvalue()


def _defined(values) -> np.ndarray:
    return np.array([v for v in values if v is not None], dtype=float)


def auprc_figure(results: Dict[str, Any]) -> Optional[bytes]:
    loc = results.get("localization")
    if not loc:
        return None
    plt = _plt()
    methods = results["methods"]
    colors = method_colors(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(methods) + 2), 4.2))
    data, positions, facecolors = [_defined(loc["auprc_mean_mask"])], [0.0], ["#bbbbbb"]
    ticks, labels = [0.0], ["average\nmask"]
    for i, m in enumerate(methods, start=1):
        data.append(_defined(loc["auprc"][m]))
        positions.append(i - 0.18)
        facecolors.append(colors[m])
        randomized = loc.get("auprc_randomized_model", {}).get(m)
        if randomized is not None:
            data.append(_defined(randomized))
            positions.append(i + 0.18)
            facecolors.append("#dddddd")
        ticks.append(i)
        labels.append(m.replace("_", "\n"))
    shown = [(d if d.size else np.array([np.nan])) for d in data]
    boxes = ax.boxplot(shown, positions=positions, widths=0.3, patch_artist=True, showfliers=True,
                       medianprops={"color": "black"})
    for patch, color in zip(boxes["boxes"], facecolors):
        patch.set_facecolor(color)
    mean_mask = loc["baselines"]["mean_mask"]["mean"]
    if mean_mask is not None:
        ax.axhline(mean_mask, color="grey", linestyle="--", linewidth=1, label=f"average-mask mean {mean_mask:.3f}")
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("AUPRC per image")
    ax.set_ylim(0, 1)
    from matplotlib.patches import Patch

    handles = [Patch(facecolor="#999999", label="trained model"), Patch(facecolor="#dddddd", label="fully randomized model")]
    if mean_mask is not None:
        handles.append(ax.get_lines()[-1])
    ax.legend(handles=handles, fontsize=8, loc="upper right")
    ax.set_title(f"AUPRC, {loc['baselines']['mean_mask']['n']} positive images", fontsize=10)
    return _png(fig)


def randomization_figure(results: Dict[str, Any]) -> Optional[bytes]:
    ran = results.get("randomization")
    if not ran:
        return None
    plt = _plt()
    methods = results["methods"]
    colors = method_colors(methods)
    labels = ran["state_labels"]
    x = np.arange(len(labels))
    fig, axes = plt.subplots(1, 2, figsize=(max(9.0, 0.6 * len(labels) + 6), 4.2), sharex=True)
    for m in methods:
        curve = ran["curves"][m]
        for ax, key in zip(axes, ("ssim", "spearman")):
            means = [1.0] + [np.nan if s["mean"] is None else s["mean"] for s in curve[key]]
            ax.plot(x, means, marker="o", markersize=3, color=colors[m], label=m)
        base = ran["different_image_baseline"][m].get("ssim")
        if base is not None:
            axes[0].axhline(base, color=colors[m], linestyle="--", linewidth=0.9, alpha=0.8)
    axes[0].set_ylabel("mean SSIM to the original map")
    axes[1].set_ylabel("mean Spearman rank correlation")
    for ax in axes:
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("randomized down to (cumulative, top-down)")
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.05, 1.05)
    axes[1].set_ylim(-1.05, 1.05)
    axes[1].legend(fontsize=7, loc="lower left")
    axes[0].set_title(f"SSIM (data_range={results['ssim_data_range']}); dashed: different-image baseline", fontsize=9)
    axes[1].set_title("Spearman (Binder et al. 2023: read beside SSIM)", fontsize=9)
    return _png(fig)


def agreement_figure(results: Dict[str, Any], criterion: str) -> Optional[bytes]:
    block = results.get(criterion)
    if not block:
        return None
    plt = _plt()
    methods = results["methods"]
    colors = method_colors(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(methods) + 2), 4.0))
    data = [_defined(block["ssim"][m]) for m in methods]
    shown = [(d if d.size else np.array([np.nan])) for d in data]
    parts = ax.violinplot([d if d.size > 1 else np.array([0.0, 0.0]) for d in shown], showmedians=True)
    for body, m in zip(parts["bodies"], methods):
        body.set_facecolor(colors[m])
        body.set_alpha(0.6)
    for i, d in enumerate(shown, start=1):
        ax.scatter(np.full(d.size, i) + np.linspace(-0.08, 0.08, d.size), d, s=6, color="black", alpha=0.5)
    baselines = block.get("different_image_baseline", {})
    for i, m in enumerate(methods, start=1):
        base = baselines.get(m, {}).get("ssim")
        if base is not None:
            ax.hlines(base, i - 0.35, i + 0.35, colors="red", linewidth=2)
    for name, value in block["reference"].items():
        ax.axhline(value, linestyle="--", color="grey", linewidth=1)
        ax.text(len(methods) + 0.45, value, name, fontsize=7, va="bottom", ha="right", color="grey")
    ax.set_xticks(range(1, len(methods) + 1))
    ax.set_xticklabels([m.replace("_", "\n") for m in methods], fontsize=8)
    ax.set_ylabel("SSIM per image")
    ax.set_ylim(-0.1, 1.05)
    other = "replicate model" if criterion == "repeatability" else "second architecture"
    ax.set_title(f"{criterion.capitalize()}: SSIM(original, {other}), {len(block['study_ids'])} images", fontsize=10)
    return _png(fig)


#: The panels of the "beyond" figure: block, per-image key, y label, per-method baseline.
_BEYOND_PANELS = (
    ("shortcut", "auprc", "AUPRC vs shortcut region", lambda r, b, m: _mean_defined(b["auprc_randomized_model"][m])),
    ("data_randomization", "ssim", "SSIM to label-randomized map",
     lambda r, b, m: r.get("different_image_baseline", {}).get(m, {}).get("ssim")),
    ("faithfulness", "score", "insertion - deletion area", lambda r, b, m: _mean_defined(b["score_random"])),
    ("robustness", "ssim", "SSIM to clean map", lambda r, b, m: r.get("different_image_baseline", {}).get(m, {}).get("ssim")),
)


def _mean_defined(values) -> Optional[float]:
    data = _defined(values)
    data = data[np.isfinite(data)]
    return float(data.mean()) if data.size else None


def beyond_figure(results: Dict[str, Any]) -> Optional[bytes]:
    """Box plots of the criteria beyond the study that ran (one panel each)."""
    panels = [p for p in _BEYOND_PANELS if results.get(p[0])]
    if not panels:
        return None
    plt = _plt()
    methods = results["methods"]
    colors = method_colors(methods)
    fig, axes = plt.subplots(1, len(panels), figsize=(max(4.0, 0.5 * len(methods) + 2) * len(panels), 3.8), squeeze=False)
    for ax, (name, key, label, baseline_of) in zip(axes[0], panels):
        block = results[name]
        data = [_defined(block[key][m]) for m in methods]
        boxes = ax.boxplot([d if d.size else np.array([np.nan]) for d in data], patch_artist=True, widths=0.6)
        for patch, m in zip(boxes["boxes"], methods):
            patch.set_facecolor(colors[m])
            patch.set_alpha(0.6)
        for i, m in enumerate(methods, start=1):
            base = baseline_of(results, block, m)
            if base is not None:
                ax.hlines(base, i - 0.35, i + 0.35, colors="red", linewidth=2)
        ax.set_xticks(range(1, len(methods) + 1))
        ax.set_xticklabels([m.replace("_", "\n") for m in methods], fontsize=7)
        ax.set_ylabel(label, fontsize=8)
        ax.set_title(f"{name.replace('_', ' ')} ({len(block['study_ids'])} images)", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def _shown_slice(image: np.ndarray, mask: Optional[np.ndarray]) -> Optional[int]:
    """For a volume ``(K, J, I)``, the slice its gallery row shows: the one with the most lesion
    voxels, else the middle one; ``None`` for a 2D image."""
    if image.ndim != 3:
        return None
    if mask is not None and mask.any():
        return int(np.argmax(mask.reshape(mask.shape[0], -1).sum(axis=1)))
    return image.shape[0] // 2


def _plane(array: np.ndarray, index: Optional[int]) -> np.ndarray:
    return array if index is None else array[index]


def gallery_figure(results: Dict[str, Any], root: Path) -> Optional[bytes]:
    items = results.get("gallery") or []
    if not items:
        return None
    plt = _plt()
    root = Path(root)
    methods = results["methods"]
    with_randomized = any(item.get("maps_randomized") for item in items)
    rows_per = 2 if with_randomized else 1
    cols = len(methods) + 1
    fig, axes = plt.subplots(rows_per * len(items), cols, figsize=(1.6 * cols, 1.7 * rows_per * len(items)),
                             squeeze=False)
    for r, item in enumerate(items):
        image = np.load(root / item["image"])
        mask = np.load(root / item["mask"]) if item.get("mask") else None
        index = _shown_slice(image, mask)                  # volumes: one slice through the lesion
        image = _plane(image, index)
        mask = None if mask is None else _plane(mask, index)
        for k in range(rows_per):
            row = axes[r * rows_per + k]
            for ax in row:
                ax.axis("off")
            if k == 0:
                row[0].imshow(image, cmap="gray", vmin=0, vmax=1)
                if mask is not None and mask.any():
                    row[0].contour(mask.astype(float), levels=[0.5], colors="red", linewidths=0.8)
                title = item["study_id"] if index is None else f"{item['study_id']} (slice {index})"
                row[0].set_title(title, fontsize=6)
            else:
                row[0].text(0.5, 0.5, "fully\nrandomized\nmodel", ha="center", va="center", fontsize=7,
                            transform=row[0].transAxes)
            source = item["maps"] if k == 0 else item.get("maps_randomized", {})
            for c, m in enumerate(methods, start=1):
                if m not in source:
                    continue
                row[c].imshow(_plane(np.load(root / source[m]), index), cmap="inferno", vmin=0, vmax=1)
                if mask is not None and mask.any():
                    row[c].contour(mask.astype(float), levels=[0.5], colors="cyan", linewidths=0.5)
                if r == 0 and k == 0:
                    row[c].set_title(m, fontsize=7)
    fig.subplots_adjust(wspace=0.04, hspace=0.12)
    return _png(fig)


def make_figures(results: Dict[str, Any], root: Path) -> Dict[str, bytes]:
    """Every figure the run supports, ``{figure id: PNG bytes}`` in :data:`FIGURES` order."""
    made = {
        "auprc": auprc_figure(results),
        "randomization": randomization_figure(results),
        "repeatability": agreement_figure(results, "repeatability"),
        "reproducibility": agreement_figure(results, "reproducibility"),
        "beyond": beyond_figure(results),
        "gallery": gallery_figure(results, root),
    }
    return {k: v for k, v in made.items() if v is not None}


def promised_figures(results: Dict[str, Any]) -> List[str]:
    """The figure ids a report of ``results`` must contain (what the run computed)."""
    ids = []
    if results.get("localization"):
        ids.append("auprc")
    if results.get("randomization"):
        ids.append("randomization")
    for criterion in ("repeatability", "reproducibility"):
        if results.get(criterion):
            ids.append(criterion)
    if any(results.get(p[0]) for p in _BEYOND_PANELS):
        ids.append("beyond")
    if results.get("gallery"):
        ids.append("gallery")
    return ids

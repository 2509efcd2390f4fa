"""A burned-in confounder for the synthetic radiographs: a shortcut a classifier can learn instead
of the lesion (``saliency-trust synth --shortcut``).

Real radiographs carry burned-in laterality markers ("L" / "R" letters, bright, near a corner); when
their presence correlates with the finding (one site, one protocol), a network learns the marker
(Zech et al., *PLoS Med* 2018; DeGrave et al., *Nat Mach Intell* 2021). Here:

* the marker is an "L" or "R" glyph (5 x 7 pixel font, scaled by an integer so that its height is
  about ``marker_size`` of the image edge, at least 7 pixels) at a random corner, ``margin`` of the
  edge away from the two nearest borders, outside the body;
* its pixels are set to the image's own maximum, so per-image min-max scaling (the bundle's
  preprocessing) is the same with or without it: the marker is a local cue only, not a global
  brightness change;
* in the **training** and **validation** splits the marker agrees with the label in a fraction
  ``correlation`` of each label's cases (1.0: present exactly when label == 1); in the **test**
  split half of each label's cases carry it (seeded), so marker and label are independent in the
  sample itself, not only in expectation.

Arrays are ``(H, W)`` = (rows J, columns I) as in :mod:`SaliencyTrustLib.synthetic`. Everything is
deterministic from the cohort seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

#: 5-wide, 7-tall bitmap glyphs of the laterality letters (1 = burned-in pixel), rows top to bottom.
GLYPHS: Dict[str, Tuple[str, ...]] = {
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
}
#: Lesion peak-intensity range of shortcut cohorts when none is given ([0, 1] image units): fainter
#: than the plain cohort's (0.22, 0.35), so a small CNN finds the marker the easier cue.
SHORTCUT_LESION_CONTRAST = (0.06, 0.1)
#: Splits in which the marker follows the label (the test split decorrelates it).
CORRELATED_SPLITS = ("training", "validation")
_SALT_ASSIGN = 7411
_SALT_DRAW = 7412


@dataclass(frozen=True)
class ShortcutSettings:
    """How the confounder is drawn and assigned.

    Args:
        correlation: fraction of each label's training / validation cases whose marker agrees with
            the label (marker present for a positive, absent for a negative); 1.0 = present exactly
            when label == 1, 0.5 = independent. The test split always gets half of each label.
        marker_size: target glyph height as a fraction of the image edge (the glyph is scaled by a
            whole number, at least 1, so the height is a multiple of 7 pixels).
        margin: ``(low, high)`` distance of the glyph from the two nearest borders, fraction of the
            image edge (drawn uniformly per case, at least 1 pixel).
    """

    correlation: float = 1.0
    marker_size: float = 0.06
    margin: Tuple[float, float] = (0.02, 0.06)

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.correlation) <= 1.0:
            raise ValueError(f"correlation must be in [0, 1], got {self.correlation}.")
        if not 0.0 < float(self.marker_size) <= 0.25:
            raise ValueError(f"marker_size must be in (0, 0.25] of the image edge, got {self.marker_size}.")
        low, high = (float(v) for v in self.margin)
        if not 0.0 <= low <= high <= 0.25:
            raise ValueError(f"margin must be (low, high) with 0 <= low <= high <= 0.25, got {self.margin}.")
        object.__setattr__(self, "margin", (low, high))

    def to_dict(self) -> Dict[str, object]:
        """Plain-JSON record (``datalist.json`` ``synthesis.shortcut``)."""
        out = asdict(self)
        out["margin"] = list(self.margin)
        return out


def assign_markers(split: Mapping[str, Sequence[str]], labels: Mapping[str, int], seed: int,
                   correlation: float = 1.0) -> Dict[str, int]:
    """Which cases carry the marker: ``{case_id: 0 | 1}``.

    Args:
        split: ``{"training": [...], "validation": [...], "test": [...]}`` case ids
            (:func:`SaliencyTrustLib.io.synth.split_case_ids`).
        labels: ``{case_id: 0 | 1}``.
        seed: the cohort seed; each (part, label) group is permuted with
            ``numpy.random.default_rng([seed, 7411, part index, label])``.
        correlation: see :class:`ShortcutSettings`.

    Returns:
        Training / validation: in each label's group, ``round(correlation * n)`` cases get
        ``marker = label`` and the others ``1 - label``. Test: ``n // 2`` of each label's group
        carry the marker, plus one more when ``n`` is odd and a seeded coin says so.
    """
    markers: Dict[str, int] = {}
    for part_index, part in enumerate(("training", "validation", "test")):
        ids = list(split.get(part, ()))
        for label in (0, 1):
            group = [case_id for case_id in ids if int(labels[case_id]) == label]
            rng = np.random.default_rng([seed, _SALT_ASSIGN, part_index, label])
            order = [group[i] for i in rng.permutation(len(group))]
            if part in CORRELATED_SPLITS:
                n_agree = int(round(float(correlation) * len(group)))
                for position, case_id in enumerate(order):
                    markers[case_id] = label if position < n_agree else 1 - label
            else:
                n_marked = len(group) // 2 + int(len(group) % 2 == 1 and rng.random() < 0.5)
                for position, case_id in enumerate(order):
                    markers[case_id] = int(position < n_marked)
    return markers


def marker_mask(shape: Tuple[int, int], rng: np.random.Generator,
                settings: ShortcutSettings = ShortcutSettings()) -> np.ndarray:
    """Bool ``(H, W)`` mask of one glyph ("L" or "R", drawn by ``rng``) near a random corner."""
    rows, cols = int(shape[0]), int(shape[1])
    letter = ("L", "R")[int(rng.integers(0, 2))]
    glyph = np.array([[c == "1" for c in line] for line in GLYPHS[letter]], bool)
    scale = max(1, int(round(settings.marker_size * min(rows, cols) / glyph.shape[0])))
    glyph = np.kron(glyph, np.ones((scale, scale), bool))
    height, width = glyph.shape
    if height + 2 > rows or width + 2 > cols:
        raise ValueError(f"a {height}x{width} marker does not fit a {rows}x{cols} image.")
    corner_row, corner_col = (int(v) for v in rng.integers(0, 2, size=2))
    margins = [max(1, int(round(rng.uniform(*settings.margin) * n))) for n in (rows, cols)]
    top = margins[0] if corner_row == 0 else rows - height - margins[0]
    left = margins[1] if corner_col == 0 else cols - width - margins[1]
    top, left = min(max(top, 0), rows - height), min(max(left, 0), cols - width)
    mask = np.zeros((rows, cols), bool)
    mask[top:top + height, left:left + width] = glyph
    return mask


def burn_marker(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``image`` (float, [0, 1]) with the pixels of ``mask`` set to the image's maximum."""
    burned = np.array(image, dtype=np.float32, copy=True)
    burned[np.asarray(mask, bool)] = float(np.max(image))
    return burned


def add_shortcut(cases: List, split: Mapping[str, Sequence[str]], seed: int,
                 settings: ShortcutSettings = ShortcutSettings()) -> Tuple[Dict[str, int], Dict[str, np.ndarray]]:
    """Burn the marker into the cases that carry it (``case.image`` replaced in place).

    Args:
        cases: 2D :class:`SaliencyTrustLib.synthetic.SyntheticCase` objects in cohort order (case
            ``i`` draws its glyph with ``numpy.random.default_rng([seed, 7412, i])``).
        split: the cohort's split (see :func:`assign_markers`).
        seed: the cohort seed.
        settings: see :class:`ShortcutSettings`.

    Returns:
        ``(markers, masks)``: ``{case_id: 0 | 1}`` and ``{case_id: bool (H, W)}`` (all False when
        the case has no marker).

    Raises:
        ValueError: a case is not 2D (markers are drawn on radiographs only).
    """
    labels = {case.case_id: int(case.label) for case in cases}
    markers = assign_markers(split, labels, seed, settings.correlation)
    masks: Dict[str, np.ndarray] = {}
    for index, case in enumerate(cases):
        if np.ndim(case.image) != 2:
            raise ValueError(f"{case.case_id}: shortcut markers are drawn on 2D radiographs only "
                             f"(kind 'cxr'); got an image of shape {np.shape(case.image)}.")
        mask = marker_mask(case.image.shape, np.random.default_rng([seed, _SALT_DRAW, index]), settings)
        if markers[case.case_id]:
            case.image = burn_marker(case.image, mask)
        else:
            mask = np.zeros_like(mask)
        masks[case.case_id] = mask
    return markers, masks

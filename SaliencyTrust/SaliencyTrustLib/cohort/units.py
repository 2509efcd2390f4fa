"""Units of work and their deterministic split over processes.

A **unit** is one saliency map and the numbers derived from it: ``(study, method, model state)``.
Units are *recorded* one by one (one row each in the results store), but *computed* in fixed
**groups**: a group is a fixed set of studies (``batch_size`` of them, in sorted study order); a
process computes every method and every model state of the studies of its groups, in batches.

Fixing the group composition up front (it depends only on the study list and ``batch_size``)
keeps every number bit-identical whatever happens at run time: a run resumed after a crash
recomputes a partially done group with the same batch and the same random seeds, and a run split
over ``N`` processes computes the same batches as one process. Sharding is by group (group ``g``
goes to rank ``g % world_size``), so each rank holds everything a study's criteria need (the
original map that the randomized / replicate / second-architecture maps are compared with).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, List, Sequence, Tuple

#: The model states besides the cascade (names used in unit keys, the store and the report).
ORIGINAL = "original"
REPLICATE = "replicate"
SECOND_ARCH = "second_arch"
#: The same architecture trained on permuted labels (the data-randomization criterion).
LABEL_RANDOMIZED = "label_randomized"
#: The original model on a perturbed input (the robustness criterion): Gaussian noise, a shift.
NOISE = "perturbed/noise"
SHIFT = "perturbed/shift"
PERTURBED = (NOISE, SHIFT)
#: The "method" of the localization networks' units (their maps are no saliency method's).
LOCALIZER = "localization_network"
#: Prefix of the cumulative randomization states, e.g. ``"cascade/02_features.denseblock3"``.
CASCADE_PREFIX = "cascade/"


@dataclass(frozen=True)
class Unit:
    """One saliency map: ``study_id`` explained by ``method`` under model state ``model_state``."""

    study_id: str
    method: str
    model_state: str

    @property
    def key(self) -> str:
        """Primary key in the results store, ``"study|method|state"``."""
        return f"{self.study_id}|{self.method}|{self.model_state}"


@dataclass(frozen=True)
class StudyGroup:
    """A fixed batch of studies computed together; ``index`` is its position in the plan."""

    index: int
    study_ids: Tuple[str, ...]


def make_groups(study_ids: Sequence[str], batch_size: int) -> List[StudyGroup]:
    """Split the sorted, de-duplicated ``study_ids`` into groups of ``batch_size`` (last one shorter).

    Raises:
        ValueError: when ``batch_size < 1`` or a study id repeats (two studies with one id would
            share a unit key and one would be lost).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ordered = sorted(study_ids)
    duplicates = sorted({s for s in ordered if ordered.count(s) > 1}) if len(set(ordered)) != len(ordered) else []
    if duplicates:
        raise ValueError(f"study ids must be unique; repeated: {duplicates[:5]}. Give each study its own id.")
    return [StudyGroup(i, tuple(ordered[start:start + batch_size]))
            for i, start in enumerate(range(0, len(ordered), batch_size))]


def shard(groups: Sequence[StudyGroup], rank: int, world_size: int) -> List[StudyGroup]:
    """The groups of ``rank`` out of ``world_size``: round-robin on the group index.

    Every group goes to exactly one rank, and the split depends only on the plan and the world
    size (never on timing), so a restarted rank takes the same share.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return [g for g in groups if g.index % world_size == rank]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (stable across processes and Python versions, unlike ``hash``)."""
    text = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


def plan_units(study_states: Iterable[Tuple[str, Sequence[str]]], methods: Sequence[str]) -> List[Unit]:
    """Every unit of a run: for each ``(study_id, model_states)`` pair, each method x state."""
    return [Unit(study, method, state) for study, states in study_states for method in methods for state in states]

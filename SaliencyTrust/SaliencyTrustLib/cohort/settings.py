"""The parameters of a trust study (every one that changes a number) and its models.

:class:`EvaluationSettings` is a plain dataclass of plain types, so a bundle config can build it with
``_target_`` and the results store can fingerprint it (:mod:`.fingerprint`). Every front end (the
CLI's ``evaluate`` / ``saliency`` / ``demo``, the bundle's ``trust.json``, the Slicer module and the
API) fills one and calls the same pipeline (:func:`SaliencyTrustLib.cohort.evaluate_cohort`); where
one image must be judged differently from a cohort, the difference is one of the named settings
below, recorded in the results and the scorecard.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple

from ..preprocessing import Preprocessing

#: The four criteria of Arun et al. 2021.
CRITERIA = ("localization", "randomization", "repeatability", "reproducibility")
#: The criteria beyond the study (issue 13, docs/beyond-the-study.md): does the map show what the
#: model really uses? Opt-in (name them in ``criteria``): each needs inputs or compute the study's
#: protocol does not.
EXTRA_CRITERIA = ("shortcut", "data_randomization", "faithfulness", "robustness")
#: Every criterion, in report order.
ALL_CRITERIA = CRITERIA + EXTRA_CRITERIA

#: The study's eight methods, in the paper's order.
PAPER_METHODS = ("gradient", "smoothgrad", "integrated_gradients", "smoothgrad_ig", "gradcam",
                 "guided_backprop", "guided_gradcam", "xrai")

#: The negative controls (kept here as names so the settings load without torch; the registry's
#: ``CONTROLS`` is the same tuple, pinned by a test).
CONTROLS = ("control_uniform", "control_single_pixel", "control_constant", "control_edge")

#: Named choices (setting -> allowed values; the first is the default).
CHOICES: Dict[str, Tuple[str, ...]] = {
    "study_selection": ("positive", "all"),
    "localization_baseline": ("average_mask", "randomized_model"),
    "consistency_target": ("own_prediction", "original_prediction"),
    "randomization_target": ("original_prediction", "own_prediction"),
    "postprocess": ("paper", "abs_sum", "minmax"),
    "faithfulness_fill": ("blur", "zero", "mean"),
}


@dataclass
class EvaluationSettings:
    """What to compute for each study and how (all defaults follow the study, PROTOCOL.md).

    Attributes:
        methods: saliency method names (``SaliencyTrustLib.saliency.available_methods()``).
        preset: method preset (``"paper"``: the study's settings).
        method_params: per-method overrides of the preset, ``{"smoothgrad": {"n_samples": 8}}``.
        criteria: subset of :data:`CRITERIA`.
        seed: decides the randomization of weights, the evaluated sample, noise of stochastic
            methods (per batch, identical across model states) and the baseline's image pairs.
        batch_size: studies per computed batch (a fixed grouping, see :mod:`.units`).
        sample_size: positive studies in the randomization / repeatability / reproducibility
            sample (the study: 100); localization uses every positive study.
        preprocessing: how an image becomes the model input
            (:class:`SaliencyTrustLib.preprocessing.Preprocessing` or its dict); maps and masks are
            compared on the model grid, maps are also written back on each image's own grid.
        cascade_granularity: ``"blocks"`` or ``"layers"``
            (:func:`SaliencyTrustLib.criteria.cascading_randomization`).
        bn_policy: what randomizing a BatchNorm layer means (``"reset"`` ...).
        ssim_data_range: SSIM ``data_range`` (the study silently used 2 for maps in [0, 1]).
        n_pairs: image pairs per image of the different-image baseline (the study: 50).
        max_studies: evaluate only the first N positive studies (sorted by id); None = all.
        study_selection: ``"positive"`` (the study: label 1, or unlabeled with ground truth) or
            ``"all"`` (every given image; one image in Slicer, ``saliency-trust saliency``).
        localization_baseline: the AUPRC baseline that decides criterion 1: ``"average_mask"``
            (the study: the mean training mask; leave-one-out over the evaluated masks without a
            training split) or ``"randomized_model"`` (the same method on the fully randomized
            model; for a single image, where no mean mask exists).
        target_class: the class explained for every model; None = each model's predicted class.
        consistency_target: the class the replicate / second architecture explain:
            ``"own_prediction"`` (each model its own, as the study) or ``"original_prediction"``.
        randomization_target: the class a randomized model explains: ``"original_prediction"``
            (the trained model's, so every state explains the same output; default) or
            ``"own_prediction"`` (each state's own argmax, as the study's released scripts did).
        postprocess: map post-processing (``"paper"``: abs, sum, clip 99th percentile, [0, 1]).
        method_postprocess: per-method override of ``postprocess``, e.g. ``{"guided_gradcam":
            "minmax"}`` (the study's Guided GradCAM: the product of the two normalized maps, min-max
            scaled without a second clip) or ``{"xrai": "minmax"}`` (XRAI's region gains without
            the clip).
        controls: negative controls run beside the methods through every criterion
            (:data:`SaliencyTrustLib.saliency.registry.CONTROLS`; ``()`` for none).
        min_images: fewest images with both numbers for a verdict; fewer is "undecided"
            (:mod:`SaliencyTrustLib.criteria.verdicts`).
        faithfulness_steps: fractions of the deletion / insertion curves (``steps + 1`` points,
            0 .. 1 of the pixels; :class:`SaliencyTrustLib.metrics.faithfulness.DeletionInsertion`).
        faithfulness_fill: what a removed pixel becomes: ``"blur"`` (the blurred image), ``"zero"``,
            ``"mean"``.
        faithfulness_batch: perturbed inputs per forward pass (the memory bound).
        robustness_noise_sigma: standard deviation of the added Gaussian noise in model-input units;
            None = each image's own noise level (Immerkaer's estimate), so the perturbation stays
            within what the scanner already adds.
        robustness_shift: translation of the shifted input, pixels of the model grid along every
            spatial axis (the map is shifted back before it is compared).
    """

    methods: Tuple[str, ...] = PAPER_METHODS
    preset: str = "paper"
    method_params: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    criteria: Tuple[str, ...] = CRITERIA
    seed: int = 0
    batch_size: int = 8
    sample_size: int = 100
    preprocessing: Any = field(default_factory=Preprocessing)
    cascade_granularity: str = "blocks"
    bn_policy: str = "reset"
    ssim_data_range: float = 2.0
    n_pairs: int = 50
    max_studies: Optional[int] = None
    study_selection: str = "positive"
    localization_baseline: str = "average_mask"
    target_class: Optional[int] = None
    consistency_target: str = "own_prediction"
    randomization_target: str = "original_prediction"
    postprocess: str = "paper"
    method_postprocess: Dict[str, str] = field(default_factory=dict)
    controls: Tuple[str, ...] = CONTROLS
    min_images: int = 20
    faithfulness_steps: int = 20
    faithfulness_fill: str = "blur"
    faithfulness_batch: int = 32
    robustness_noise_sigma: Optional[float] = None
    robustness_shift: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.preprocessing, dict):
            self.preprocessing = Preprocessing(**self.preprocessing)
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}.")
        self.methods = tuple(self.methods)
        self.criteria = tuple(self.criteria)
        self.controls = tuple(self.controls)
        self.method_postprocess = dict(self.method_postprocess or {})
        for method, name in self.method_postprocess.items():
            if name not in CHOICES["postprocess"] or method not in self.methods:
                raise ValueError(f"method_postprocess {method}={name}: the method must be one of the methods and "
                                 f"the post-processing one of {list(CHOICES['postprocess'])}.")
        wrong = sorted(set(self.controls) - set(CONTROLS))
        if wrong:
            raise ValueError(f"unknown controls {wrong}; choose among {list(CONTROLS)}.")
        if set(self.controls) & set(self.methods):
            raise ValueError("a control is listed among the methods; give it in controls only.")
        unknown = sorted(set(self.criteria) - set(ALL_CRITERIA))
        if unknown:
            raise ValueError(f"unknown criteria {unknown}; choose among {list(ALL_CRITERIA)}.")
        if not self.methods:
            raise ValueError("methods is empty; name at least one saliency method.")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods repeat: {list(self.methods)}.")
        for name, value in (("batch_size", self.batch_size), ("sample_size", self.sample_size),
                            ("n_pairs", self.n_pairs), ("faithfulness_steps", self.faithfulness_steps),
                            ("faithfulness_batch", self.faithfulness_batch)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        if self.robustness_shift < 0 or (self.robustness_noise_sigma is not None and self.robustness_noise_sigma < 0):
            raise ValueError("robustness_shift and robustness_noise_sigma must be >= 0.")

    def to_dict(self) -> Dict[str, Any]:
        """Plain-JSON form (tuples as lists)."""
        out = asdict(self)
        out["methods"], out["criteria"] = list(self.methods), list(self.criteria)
        out["controls"] = list(self.controls)
        out["preprocessing"] = self.preprocessing.to_dict()
        return out


@dataclass
class StudyModels:
    """The models of a study: each a :class:`~SaliencyTrustLib.model_spec.ModelSpec`, a path
    (weights, TorchScript or a bundle folder; built-in architecture from the checkpoint), or a
    ``torch.nn.Module`` already in memory.

    ``original`` is required; ``replicate`` (same architecture, trained apart) enables the
    repeatability criterion and ``second_arch`` (another architecture) reproducibility.
    ``localizer`` and ``localizer_replicate`` are two segmentation networks trained apart
    (:mod:`SaliencyTrustLib.localizers`, or any module giving one logit channel per pixel): the first
    one's AUPRC is criterion 1's localization-network baseline, and the SSIM between their maps is
    the bar of criteria 3 and 4, as in the study. ``label_randomized`` (same architecture, trained
    on permuted labels, Adebayo et al. 2018) enables the data-randomization criterion.
    """

    original: Any
    replicate: Any = None
    second_arch: Any = None
    localizer: Any = None
    localizer_replicate: Any = None
    label_randomized: Any = None

    def __post_init__(self) -> None:
        from ..model_spec import ModelSpec

        for state in ("original", "replicate", "second_arch", "localizer", "localizer_replicate", "label_randomized"):
            value = getattr(self, state)
            if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
                setattr(self, state, ModelSpec(path=str(value)))
        if self.original is None:
            raise ValueError("StudyModels: the original model is required.")

    @classmethod
    def from_bundle(cls, bundle_dir: str) -> "StudyModels":
        """The bundle's models: the bundle itself (``network_def`` + ``models/model.pt``), and
        ``models/model_replicate.pt`` / ``models/model_second_arch.pt`` /
        ``models/model_label_randomized.pt`` / ``models/localizer.pt`` / ``models/localizer_replicate.pt``
        when present."""
        from pathlib import Path

        from ..model_spec import ModelSpec

        models = Path(bundle_dir) / "models"
        if not (models / "model.pt").is_file():
            from ..io.errors import InputError

            raise InputError(models / "model.pt", "the bundle has no trained model.",
                             "train it (MonaiBundle/configs/train.json) or pass --model WEIGHTS.")
        optional = {name: ModelSpec(path=str(models / f"model_{name}.pt"))
                    for name in ("replicate", "second_arch", "label_randomized")
                    if (models / f"model_{name}.pt").is_file()}
        optional.update({name: ModelSpec(path=str(models / f"{name}.pt")) for name in ("localizer", "localizer_replicate")
                         if (models / f"{name}.pt").is_file()})
        return cls(original=ModelSpec(path=str(bundle_dir)), **optional)

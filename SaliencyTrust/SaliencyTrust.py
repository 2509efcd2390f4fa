"""SaliencyTrust: review a classifier's saliency maps and whether they can be trusted, in 3D Slicer.

One file with the four classes of a Slicer scripted module (the extension template's shape):

* :class:`SaliencyTrust` - module metadata.
* :class:`SaliencyTrustWidget` - binds ``Resources/UI/SaliencyTrust.ui`` to a parameter node
  (:class:`SaliencyTrustParameterNode`); it computes nothing.
* :class:`SaliencyTrustLogic` - converts between MRML nodes and the core's arrays and calls
  ``SaliencyTrustLib`` (saliency engine, metrics, criteria, writers). The only arithmetic here is
  geometry conversion: IJK <-> RAS through the volume's ``IJKToRAS`` matrix, RAS <-> LPS for the
  core's :class:`~SaliencyTrustLib.image.ImageVolume`, ROI boxes to IJK masks, segmentations
  exported on the volume's grid, maps resampled between the model grid and the volume grid.
* :class:`SaliencyTrustTest` - exercises the whole module inside a running Slicer.

Conventions: voxel arrays are ``(K, J, I)`` like ``slicer.util.arrayFromVolume``; the core works in
LPS, MRML in RAS. Heavy work (model inference, saliency, randomization) runs in a child Python
process (``python -m SaliencyTrustLib run-request``, the core's one study pipeline), followed by a
worker thread that turns its progress lines into steps; every change to the MRML scene is applied
on the GUI thread by a ``qt.QTimer`` that polls the worker, so the GUI stays responsive, and Cancel
kills the child process at once. Models given in memory (``models=``) run in the worker thread.
"""

import dataclasses
import importlib
import importlib.util
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import qt
import slicer
import vtk
from slicer import (
    vtkMRMLMarkupsROINode,
    vtkMRMLPlotChartNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# The core package lives next to this file (SaliencyTrust/SaliencyTrustLib); Slicer puts a
# scripted module's folder on sys.path, this makes the same true when the file is imported by path.
_MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
if _MODULE_DIR not in sys.path:
    sys.path.insert(0, _MODULE_DIR)

#: Default model: the MONAI bundle shipped with the extension (``Resources/MonaiBundle``, copied by
#: CMake), else the repository's (``MonaiBundle/`` beside ``SaliencyTrust/``).
DEFAULT_BUNDLE_DIR = next((d for d in (os.path.join(_MODULE_DIR, "Resources", "MonaiBundle"),
                                       os.path.join(os.path.dirname(_MODULE_DIR), "MonaiBundle"))
                           if os.path.isdir(d)), os.path.join(os.path.dirname(_MODULE_DIR), "MonaiBundle"))

#: The study's eight methods (Arun et al. 2021), selected by default.
STUDY_METHODS = ("gradient", "smoothgrad", "integrated_gradients", "smoothgrad_ig", "gradcam",
                 "guided_backprop", "guided_gradcam", "xrai")
#: Names of the saliency registry's contract, used to fill the GUI before the dependencies (torch)
#: are installed; once they are, :func:`SaliencyTrustLogic.availableMethods` asks the registry.
CONTRACT_METHODS = STUDY_METHODS + ("occlusion", "gradcam_pp")

#: The study's four criteria (Arun et al. 2021), ticked by default.
STUDY_CRITERIA = ("localization", "randomization", "repeatability", "reproducibility")
#: The criteria beyond the study (issue 13), opt-in: ``shortcut`` needs the region of a known
#: confounder (a burned-in marker), ``data_randomization`` a model trained on permuted labels;
#: ``faithfulness`` and ``robustness`` need only compute.
BEYOND_CRITERIA = ("shortcut", "data_randomization", "faithfulness", "robustness")
#: Every criterion the module offers: the core's ``ALL_CRITERIA`` (a test holds them equal).
CRITERIA = STUDY_CRITERIA + BEYOND_CRITERIA
#: What a removed pixel becomes in the faithfulness curves (``EvaluationSettings.faithfulness_fill``).
FAITHFULNESS_FILLS = ("blur", "zero", "mean")
#: File name of a bundle's label-randomized model (``StudyModels.from_bundle`` picks it up).
LABEL_RANDOMIZED_FILE = os.path.join("models", "model_label_randomized.pt")
#: Study id of the reviewed image in the pipeline's results (baseline images: ``baseline-NN``).
INPUT_STUDY_ID = "input"

#: The Python packages the core needs, with version ranges (``pyproject.toml``'s dependencies; a
#: test holds them equal). Checked on the first Apply: a package that is absent, or installed at a
#: version outside its range (an older monai), is installed / upgraded. torch comes from the PyTorch
#: extension (``PyTorchUtils``, which picks the CUDA build), the rest from ``slicer.packaging``.
REQUIREMENTS_FILE = os.path.join(_MODULE_DIR, "Resources", "requirements.txt")
#: Distribution names installed by the PyTorch extension rather than pip.
TORCH_DISTRIBUTIONS = ("torch",)

#: Where the extension is documented (the Extensions Index's homepage; an anchor that exists in
#: docs/slicer.md, tested).
HOMEPAGE_URL = "https://github.com/SaliencyTrust/SaliencyTrust/blob/main/docs/slicer.md#the-3d-slicer-module"
#: Module category: one the Slicer Extensions Index accepts (the extension's EXTENSION_CATEGORY).
MODULE_CATEGORY = "Quantification"
#: Contributors as "Name (Organization)", as Slicer lists them (the extension's EXTENSION_CONTRIBUTORS).
CONTRIBUTORS = ("SaliencyTrust developers (SaliencyTrust project)",)

#: The sample data set this module registers with the SampleData module (generated, not downloaded).
SAMPLE_DATA_NAME = "SaliencyTrustChest"
#: Threshold of the segmentation made from each map (the DICOM SEG export uses the same).
MAP_SEGMENTATION_THRESHOLD = 0.5
#: Preprocessing presets offered in the panel; "from bundle metadata" reads the bundle's
#: ``network_data_format`` (the bundle's defaults for a model file).
PREPROCESSING_CHOICES = ("from bundle metadata", "bundle", "study")

#: Name of the overlay colour table the module adds to the scene (blue = low, red = high, the
#: "jet" look of saliency papers), the same in Slicer and headless.
MAP_COLOR_TABLE_NAME = "SaliencyTrust jet"
#: Control points of that table: (position in [0, 1], R, G, B).
MAP_COLOR_POINTS = ((0.0, 0.0, 0.0, 0.5), (0.125, 0.0, 0.0, 1.0), (0.375, 0.0, 1.0, 1.0),
                    (0.625, 1.0, 1.0, 0.0), (0.875, 1.0, 0.0, 0.0), (1.0, 0.5, 0.0, 0.0))
#: Map values below this are transparent in the overlay (display only; the map is unchanged).
OVERLAY_TRANSPARENT_BELOW = 0.1

#: Attribute set on every node this module creates, so a rerun replaces rather than piles up.
OUTPUT_ATTRIBUTE = "SaliencyTrust.Output"


class DependencyError(RuntimeError):
    """The Python packages the computation needs are missing and were not installed."""


class EvaluationCancelled(RuntimeError):
    """Raised inside the worker when the user pressed Cancel (caught by the runner)."""


#
# SaliencyTrust
#


class SaliencyTrust(ScriptedLoadableModule):
    """Module metadata (see the ScriptedLoadableModule base class in Slicer)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Saliency Trust")
        # Slicer's own "Quantification" category (translated as the core translates it).
        self.parent.categories = [translate("qSlicerAbstractCoreModule", MODULE_CATEGORY)]
        self.parent.dependencies = []
        self.parent.contributors = list(CONTRIBUTORS)
        self.parent.helpText = _(
            "Computes a classifier's saliency maps on the selected image and tests whether they can "
            "be trusted to localize an abnormality (localization utility, sensitivity to weight "
            "randomization, repeatability, reproducibility; Arun et al., Radiology: AI 2021) and, "
            "on request, whether they show what the model uses (shortcut revealed, data "
            "randomization, faithfulness, robustness). See the <a href=\"{url}\">module documentation</a>."
        ).format(url=HOMEPAGE_URL)
        self.parent.acknowledgementText = _(
            "Built on MONAI, captum, highdicom and 3D Slicer. Criteria from Arun N. et al., "
            "Assessing the Trustworthiness of Saliency Maps for Localizing Abnormalities in "
            "Medical Imaging, Radiology: Artificial Intelligence 2021;3(6):e200267."
        )
        # The sample data set is registered once the SampleData module exists (after start-up).
        app = getattr(slicer, "app", None)
        if app is not None and hasattr(app, "connect"):
            app.connect("startupCompleted()", registerSampleData)


def registerSampleData() -> None:
    """Register a synthetic chest radiograph with the SampleData module (category "Saliency Trust").

    Nothing is downloaded: the loader generates the image, its lesion segmentation and a second
    image for the baselines (:meth:`SaliencyTrustLogic.loadSampleData`). Needs numpy and scipy only.
    """
    try:
        import SampleData
    except ImportError:  # the SampleData module is disabled in this Slicer: nothing to register with
        return
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="Saliency Trust", sampleName=SAMPLE_DATA_NAME, uris=[], fileNames=[], nodeNames=[],
        thumbnailFileName=os.path.join(_MODULE_DIR, "Resources", "Icons", "SaliencyTrust.png"),
        customDownloader=loadSampleData)


def loadSampleData(source=None) -> List[Any]:
    """The SampleData loader: :meth:`SaliencyTrustLogic.loadSampleData` into ``slicer.mrmlScene``."""
    return SaliencyTrustLogic().loadSampleData()


#
# SaliencyTrustParameterNode
#


@parameterNodeWrapper
class SaliencyTrustParameterNode:
    """What the user chose in the module panel (saved with the scene).

    inputVolume - the image to explain (any scalar volume: DICOM, NRRD, NIfTI ...).
    groundTruthSegmentation - optional ground truth; all its segments are unioned.
    groundTruthROIs - optional ground-truth boxes (markups ROI nodes), unioned.
    baselineVolumes - other images, for the different-image SSIM baseline.
    modelPath - a MONAI bundle folder or a model file (weights .pt, TorchScript .ts).
    modelFactory - for a lab's own weights: ``module:callable`` or ``path/to/file.py:callable``
        building the network; "" = a bundle, TorchScript or a built-in architecture.
    modelKwargs - the factory's keyword arguments as a JSON object ("" = none).
    preprocessingPreset - :data:`PREPROCESSING_CHOICES`: "from bundle metadata" (the bundle's
        ``network_data_format``), "bundle" (1 channel, 224 px, [0, 1]) or "study" (Arun et al.:
        3 channels, 320 px, [-1, 1]).
    inChannels, inputSize - override the preset: network input channels (grey repeated) and grid
        edge in pixels; 0 = the preset's (channels: read from the model's first convolution).
    resizeMode - "preset", or "squash" / "pad" / "crop" (see ``SaliencyTrustLib.preprocessing``).
    intensity - "" = the preset's, or "minmax01", "minmax11", "imagenet", "meanstd:M,S", "window:C,W".
    methods - saliency method names of the core's registry.
    targetClass - class whose pre-softmax logit is explained; -1 = the predicted class.
    run* - which trust criteria to evaluate: the study's four (on by default) and the four beyond
        the study (off by default; :data:`BEYOND_CRITERIA`).
    shortcutSegmentation - the region of a known confounder (a burned-in marker) the ``shortcut``
        criterion scores each map against; all its segments are unioned.
    labelRandomizedModelPath - the same architecture trained on permuted labels (``data_randomization``);
        unset ("" / ".") = the bundle's ``models/model_label_randomized.pt`` when the model is a
        bundle folder that has one.
    faithfulnessFill, faithfulnessSteps - ``EvaluationSettings.faithfulness_fill`` / ``_steps``.
    robustnessShift - ``EvaluationSettings.robustness_shift`` (model-grid pixels; the noise level is
        each image's own, ``robustness_noise_sigma=None``; the Logic takes another).
    granularity - cascading randomization by "blocks" or "layers".
    seed - seed of randomization and baseline pairs.
    device - where the model runs: "auto" (GPU when available), "cpu" or "cuda".
    overlayOpacity - opacity of the saliency overlay on the slice views.
    displayedMethod - the method whose map is overlaid.
    exportDirectory - where Export writes files; exportToDicomDatabase - also DICOM objects.
    outputTable / outputPlotChart - results of the last Apply.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    groundTruthSegmentation: vtkMRMLSegmentationNode
    groundTruthROIs: list[vtkMRMLMarkupsROINode]
    baselineVolumes: list[vtkMRMLScalarVolumeNode]
    modelPath: Path = Path(DEFAULT_BUNDLE_DIR)
    modelFactory: str = ""
    modelKwargs: str = ""
    preprocessingPreset: Annotated[str, Choice(list(PREPROCESSING_CHOICES))] = PREPROCESSING_CHOICES[0]
    inChannels: Annotated[int, WithinRange(0, 64)] = 0
    inputSize: Annotated[int, WithinRange(0, 4096)] = 0
    resizeMode: Annotated[str, Choice(["preset", "squash", "pad", "crop"])] = "preset"
    intensity: str = ""
    methods: list[str] = list(STUDY_METHODS)
    targetClass: Annotated[int, WithinRange(-1, 999)] = -1
    runLocalization: bool = True
    runRandomization: bool = True
    runRepeatability: bool = True
    runReproducibility: bool = True
    runShortcut: bool = False
    runDataRandomization: bool = False
    runFaithfulness: bool = False
    runRobustness: bool = False
    shortcutSegmentation: vtkMRMLSegmentationNode
    labelRandomizedModelPath: Path
    faithfulnessFill: Annotated[str, Choice(list(FAITHFULNESS_FILLS))] = FAITHFULNESS_FILLS[0]
    faithfulnessSteps: Annotated[int, WithinRange(1, 1000)] = 20
    robustnessShift: Annotated[int, WithinRange(0, 64)] = 2
    granularity: Annotated[str, Choice(["blocks", "layers"])] = "blocks"
    seed: Annotated[int, WithinRange(0, 2**31 - 1)] = 0
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"
    overlayOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    displayedMethod: str = ""
    exportDirectory: Path
    exportToDicomDatabase: bool = False
    outputTable: vtkMRMLTableNode
    outputPlotChart: vtkMRMLPlotChartNode


#
# SaliencyTrustWidget
#


class SaliencyTrustWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds the .ui to the parameter node; Apply/Cancel/Export call the Logic."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: Optional["SaliencyTrustLogic"] = None
        self._parameterNode: Optional[SaliencyTrustParameterNode] = None
        self._parameterNodeGuiTag = None
        self._runner: Optional["SaliencyTrustRunner"] = None
        self._result: Optional["EvaluationResult"] = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SaliencyTrust.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SaliencyTrustLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # Widgets the parameter node wrapper cannot bind by itself (lists shown as checkable items).
        for name in self.logic.availableMethods():
            item = qt.QListWidgetItem(name)
            item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
            item.setCheckState(qt.Qt.Unchecked)
            self.ui.methodsListWidget.addItem(item)
        self.ui.methodsListWidget.itemChanged.connect(self.onMethodsChanged)
        self.ui.groundTruthROISelector.checkedNodesChanged.connect(self.onCheckedNodesChanged)
        self.ui.baselineVolumesSelector.checkedNodesChanged.connect(self.onCheckedNodesChanged)
        self.ui.displayedMethodComboBox.currentTextChanged.connect(self.onDisplayedMethodChanged)

        self.ui.applyButton.clicked.connect(self.onApplyButton)
        self.ui.cancelButton.clicked.connect(self.onCancelButton)
        self.ui.exportButton.clicked.connect(self.onExportButton)
        self.ui.cancelButton.enabled = False
        self.ui.progressBar.setValue(0)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUI)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: Optional[SaliencyTrustParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUI)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets with a "SlicerParameterName" property in the .ui are bound both ways here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUI)
            self._updateGUI()

    def _updateGUI(self, caller=None, event=None) -> None:
        """Parameter node -> the widgets that connectGui does not bind, and button states."""
        p = self._parameterNode
        if p is None:
            return
        chosen = set(p.methods)
        widget = self.ui.methodsListWidget
        wasBlocked = widget.blockSignals(True)
        for row in range(widget.count):
            item = widget.item(row)
            item.setCheckState(qt.Qt.Checked if item.text() in chosen else qt.Qt.Unchecked)
        widget.blockSignals(wasBlocked)
        for selector, nodes in ((self.ui.groundTruthROISelector, p.groundTruthROIs),
                                (self.ui.baselineVolumesSelector, p.baselineVolumes)):
            wasBlocked = selector.blockSignals(True)
            ids = {n.GetID() for n in nodes if n}
            for row in range(selector.nodeCount()):
                node = selector.nodeFromIndex(row)
                selector.setCheckState(node, qt.Qt.Checked if node.GetID() in ids else qt.Qt.Unchecked)
            selector.blockSignals(wasBlocked)
        for widget, on in ((self.ui.shortcutSegmentationSelector, p.runShortcut),
                           (self.ui.labelRandomizedModelPathLineEdit, p.runDataRandomization),
                           (self.ui.faithfulnessFillComboBox, p.runFaithfulness),
                           (self.ui.faithfulnessStepsSpinBox, p.runFaithfulness),
                           (self.ui.robustnessShiftSpinBox, p.runRobustness)):
            widget.enabled = on
        running = self._runner is not None and self._runner.running
        ready = bool(p.inputVolume) and bool(p.methods) and not running
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = (_("Compute the maps and the trust criteria") if ready else
                                       _("Select an input volume and at least one method"))
        self.ui.cancelButton.enabled = running
        self.ui.exportButton.enabled = bool(p.outputTable) and not running
        if self.ui.resultsTableView.mrmlTableNode() != p.outputTable:  # resetting would drop tooltips
            self.ui.resultsTableView.setMRMLTableNode(p.outputTable)
        if self._result is not None and self._result.mapNodes:
            self.logic.setOverlayOpacity(p.overlayOpacity)

    def onMethodsChanged(self, item=None) -> None:
        widget = self.ui.methodsListWidget
        self._parameterNode.methods = [widget.item(r).text() for r in range(widget.count)
                                       if widget.item(r).checkState() == qt.Qt.Checked]

    def onCheckedNodesChanged(self) -> None:
        self._parameterNode.groundTruthROIs = list(self.ui.groundTruthROISelector.checkedNodes())
        self._parameterNode.baselineVolumes = list(self.ui.baselineVolumesSelector.checkedNodes())

    def onDisplayedMethodChanged(self, method: str) -> None:
        if method and self._result is not None:
            self._parameterNode.displayedMethod = method
            self.logic.showMap(self._result, method, self._parameterNode.overlayOpacity)

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Saliency Trust could not start."), waitCursor=True):
            self.logic.ensureDependencies(askConfirmation=True)
            request = self.logic.requestFromParameterNode(self._parameterNode)
            self.ui.statusLabel.text = _("Running...")
            self._runner = self.logic.startEvaluation(
                request, onProgress=self._onProgress, onFinished=self._onFinished)
            self._updateGUI()

    def onCancelButton(self) -> None:
        if self._runner is not None:
            self.ui.statusLabel.text = _("Cancelling...")
            self._runner.cancel()

    def _onProgress(self, fraction: float, message: str) -> None:
        self.ui.progressBar.setValue(int(round(100 * fraction)))
        self.ui.statusLabel.text = message

    def _onFinished(self, result: Optional["EvaluationResult"], error: Optional[BaseException]) -> None:
        self._runner = None
        if error is not None and not isinstance(error, EvaluationCancelled):
            slicer.util.errorDisplay(_("Saliency Trust failed: {error}").format(error=error),
                                     detailedText=getattr(error, "traceback", ""))
        if result is not None:
            self._result = result
            self._parameterNode.outputTable = result.tableNode
            self._parameterNode.outputPlotChart = result.plotChartNode
            self.ui.predictionLabel.text = result.predictionText()
            combo = self.ui.displayedMethodComboBox
            wasBlocked = combo.blockSignals(True)
            combo.clear()
            for method in result.mapNodes:
                combo.addItem(method)
            combo.blockSignals(wasBlocked)
            if result.mapNodes:
                first = next(iter(result.mapNodes))
                combo.setCurrentText(first)
                self.onDisplayedMethodChanged(first)
            if result.plotChartNode is not None:
                self.logic.showPlot(result.plotChartNode)
            self.ui.statusLabel.text = result.status
        self._updateGUI()
        if result is not None and result.tableNode is not None:
            self._setRuleToolTips(result)

    def _setRuleToolTips(self, result: "EvaluationResult") -> None:
        """Each row's rule as the tooltip of its cells (the rule column holds it too)."""
        model = self.ui.resultsTableView.tableModel()
        for row, scorecardRow in enumerate(result.scorecard.rows):
            for column in range(model.columnCount()):
                item = model.item(row, column)
                if item is not None:
                    item.setToolTip(scorecardRow.rule)

    def onExportButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            if self._result is None:
                raise ValueError(_("Nothing to export: press Apply first."))
            p = self._parameterNode
            written = self.logic.exportResults(self._result, p.exportDirectory,
                                               toDicomDatabase=p.exportToDicomDatabase)
            self.ui.statusLabel.text = _("Exported {n} files to {folder}").format(
                n=len(written), folder=p.exportDirectory)


#
# Data passed between the GUI thread and the worker
#


@dataclasses.dataclass
class EvaluationRequest:
    """Everything the worker needs, as plain arrays (gathered on the GUI thread).

    Attributes:
        image: the input as an LPS :class:`~SaliencyTrustLib.image.ImageVolume`, array ``(K, J, I)``.
        groundTruth: bool ``(K, J, I)`` on the image grid, or None.
        baselineImages: other images (``ImageVolume``), for the different-image baseline.
        modelPath: bundle folder or model file.
        methods: registry names.
        targetClass: explained class, or None for the predicted class.
        criteria: subset of :data:`CRITERIA` (the study's four and those beyond the study).
        granularity, seed: cascading randomization settings.
        inputNodeID: MRML ID of the input volume (used only on the GUI thread).
        device: ``"auto"`` (CUDA when torch sees a GPU, else CPU), ``"cpu"`` or ``"cuda"``.
        modelFactory, modelKwargs: ``"module:callable"`` building the network of a weight file,
            and its keyword arguments (:class:`SaliencyTrustLib.model_spec.ModelSpec`).
        preprocessing: a :class:`SaliencyTrustLib.preprocessing.Preprocessing`; None: the
            bundle's ``network_data_format``, else the defaults.
        workDirectory: the study pipeline's results folder (re-used: the same Apply resumes).
        shortcut: bool ``(K, J, I)`` on the image grid, the known confounder's region (a burned-in
            marker) for the ``shortcut`` criterion; None when the criterion is not run.
        labelRandomizedModelPath: the model trained on permuted labels (``data_randomization``),
            built like the model (same factory); None when the criterion is not run or the model
            is given in memory.
        faithfulnessSteps, faithfulnessFill: deletion / insertion curve points less one and what a
            removed pixel becomes (``EvaluationSettings.faithfulness_steps`` / ``_fill``).
        robustnessShift, robustnessNoiseSigma: input shift in model-grid pixels and noise standard
            deviation in model-input units, None = each image's own noise level
            (``EvaluationSettings.robustness_shift`` / ``_noise_sigma``).
    """

    image: Any
    groundTruth: Optional[np.ndarray]
    baselineImages: List[Any]
    modelPath: Path
    methods: List[str]
    targetClass: Optional[int]
    criteria: List[str]
    granularity: str = "blocks"
    seed: int = 0
    inputNodeID: str = ""
    device: str = "auto"
    modelFactory: Optional[str] = None
    modelKwargs: Optional[Dict[str, Any]] = None
    preprocessing: Any = None
    workDirectory: Optional[Path] = None
    shortcut: Optional[np.ndarray] = None
    labelRandomizedModelPath: Optional[Path] = None
    faithfulnessSteps: int = 20
    faithfulnessFill: str = FAITHFULNESS_FILLS[0]
    robustnessShift: int = 2
    robustnessNoiseSigma: Optional[float] = None


@dataclasses.dataclass
class EvaluationResult:
    """What an evaluation produced; arrays are ``(K, J, I)`` on the input grid.

    ``scorecard`` is the core's :class:`~SaliencyTrustLib.criteria.Scorecard` of the study (the
    same type the CLI, bundle and report write); ``results`` the pipeline's ``results.json``
    content; ``curves[method]`` is ``[(state_name, mean SSIM), ...]`` of cascading randomization.
    """

    request: EvaluationRequest
    predictedClass: Optional[int] = None
    targetClass: Optional[int] = None
    probability: Optional[float] = None
    maps: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    scorecard: Any = None
    results: Dict[str, Any] = dataclasses.field(default_factory=dict)
    curves: Dict[str, List[Any]] = dataclasses.field(default_factory=dict)
    differentImageBaseline: Dict[str, float] = dataclasses.field(default_factory=dict)
    mapNodes: Dict[str, Any] = dataclasses.field(default_factory=dict)
    segmentationNodes: Dict[str, Any] = dataclasses.field(default_factory=dict)
    tableNode: Any = None
    curveTableNode: Any = None
    plotChartNode: Any = None
    status: str = ""
    cancelled: bool = False

    def predictionText(self) -> str:
        """E.g. ``predicted class 1 (p = 0.943); explained class 1``."""
        if self.probability is None:
            return ""
        return (f"predicted class {self.predictedClass} (p = {self.probability:.3f}); "
                f"explained class {self.targetClass}")


@dataclasses.dataclass
class Step:
    """One unit of finished work: progress in [0, 1], a message, and MRML updates for the GUI thread."""

    progress: float
    message: str
    apply: Optional[Callable[[], None]] = None


#
# SaliencyTrustRunner
#


class SaliencyTrustRunner:
    """Runs a step generator off the GUI thread and applies each step's MRML updates on it.

    ``steps`` is an iterator of :class:`Step`; its body (reading the study process, or inference
    and saliency for in-memory models) runs in a worker thread, each ``Step.apply`` runs on the
    thread that owns the ``qt.QTimer`` (the GUI thread). :meth:`cancel` calls ``onCancel`` at once
    (the Logic kills the study process there) and stops the worker before its next step;
    :meth:`runSynchronously` does the same work on the calling thread (batch mode, tests).
    """

    #: Seconds the GUI thread sleeps in each poll while the worker runs (see :meth:`_poll`).
    LEND_GIL_S = 0.002

    def __init__(self, steps: Iterator[Step], onProgress: Optional[Callable[[float, str], None]] = None,
                 onFinished: Optional[Callable[[Any, Optional[BaseException]], None]] = None,
                 result: Any = None, pollIntervalMs: int = 50,
                 onCancel: Optional[Callable[[], None]] = None) -> None:
        self._steps = steps
        self._onCancel = onCancel
        self._onProgress = onProgress or (lambda fraction, message: None)
        self._onFinished = onFinished or (lambda result, error: None)
        self.result = result
        self.error: Optional[BaseException] = None
        self.running = False
        self._cancelEvent = threading.Event()
        self._queue: "queue.Queue" = queue.Queue()
        self._thread: Optional[threading.Thread] = None
        self._timer = None
        self._pollIntervalMs = pollIntervalMs

    @property
    def cancelRequested(self) -> bool:
        return self._cancelEvent.is_set()

    def cancel(self) -> None:
        """Stop: ``onCancel`` runs now (it kills the study process), the worker stops before its next step."""
        self._cancelEvent.set()
        if self._onCancel is not None:
            self._onCancel()

    def runSynchronously(self) -> Any:
        """Run every step on this thread; raises what a step raised."""
        self.running = True
        try:
            for step in self._steps:
                if step.apply is not None:
                    step.apply()
                self._onProgress(step.progress, step.message)
                if self._cancelEvent.is_set():
                    self._steps.close()
                    raise EvaluationCancelled("cancelled by the user")
        except BaseException as error:  # report then re-raise, like the asynchronous path
            self.error = error
            self.running = False
            self._onFinished(self.result, error)
            raise
        self.running = False
        self._onFinished(self.result, None)
        return self.result

    def start(self) -> "SaliencyTrustRunner":
        """Start the worker thread and the GUI-thread timer that applies its steps."""
        self.running = True
        self._thread = threading.Thread(target=self._work, name="SaliencyTrustWorker", daemon=True)
        self._timer = qt.QTimer()
        self._timer.setInterval(self._pollIntervalMs)
        self._timer.timeout.connect(self._poll)
        self._thread.start()
        self._timer.start()
        return self

    def _work(self) -> None:
        try:
            for step in self._steps:
                self._queue.put(("step", step))
                if self._cancelEvent.is_set():
                    self._steps.close()
                    self._queue.put(("error", EvaluationCancelled("cancelled by the user")))
                    return
        except BaseException as error:  # handed to the GUI thread, never lost in the worker
            import traceback
            error.traceback = traceback.format_exc()
            self._queue.put(("error", error))
            return
        self._queue.put(("done", None))

    def _poll(self) -> None:
        """GUI thread: apply what the worker finished, then lend it the interpreter briefly.

        Without PythonQt's thread support the GUI thread keeps Python's GIL while it sits in Qt's
        event loop; the short sleep releases it so the worker's Python glue between torch kernels
        (which run without the GIL) still advances. With thread support it costs ~2 ms a tick.
        """
        if self._thread is not None and self._thread.is_alive() and self._queue.empty():
            time.sleep(self.LEND_GIL_S)
        while True:
            try:
                kind, payload = self._queue.get_nowait()
            except queue.Empty:
                return
            if kind == "step":
                try:
                    if payload.apply is not None and not (
                            self._cancelEvent.is_set() and payload.progress < 1.0):
                        payload.apply()
                except BaseException as error:
                    self._cancelEvent.set()
                    self._finish(error)
                    return
                self._onProgress(payload.progress, payload.message)
            else:
                self._finish(payload)
                return

    def _finish(self, error: Optional[BaseException]) -> None:
        self._timer.stop()
        self.error = error
        self.running = False
        if isinstance(error, EvaluationCancelled) and self.result is not None:
            self.result.cancelled = True
            self.result.status = _("Cancelled; the maps finished before Cancel are kept.")
        self._onFinished(self.result, error)

    def wait(self, timeoutS: float = 600.0) -> None:
        """Block until the worker thread ends (the GUI-thread steps still need the event loop)."""
        if self._thread is not None:
            self._thread.join(timeoutS)


#
# SaliencyTrustLogic
#


class SaliencyTrustLogic(ScriptedLoadableModuleLogic):
    """MRML <-> arrays conversion and the calls into ``SaliencyTrustLib``; usable without the GUI.

    Args:
        scene: the MRML scene to read from and write to (default ``slicer.mrmlScene``).
    """

    def __init__(self, scene=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._scene = scene

    @property
    def scene(self):
        return self._scene if self._scene is not None else slicer.mrmlScene

    def getParameterNode(self) -> SaliencyTrustParameterNode:
        return SaliencyTrustParameterNode(super().getParameterNode())

    # ---------------------------------------------------------------- dependencies

    @staticmethod
    def loadRequirements(path: str = REQUIREMENTS_FILE) -> List[Any]:
        """``Resources/requirements.txt`` as ``packaging.requirements.Requirement`` objects (comments,
        blank lines and pip options skipped, as ``slicer.packaging.load_requirements`` reads it)."""
        from packaging.requirements import Requirement

        with open(path, encoding="utf-8") as handle:
            lines = [line.split("#", 1)[0].strip() for line in handle]
        return [Requirement(line) for line in lines if line and not line.startswith("-")]

    @staticmethod
    def unsatisfiedRequirements(requirements: Sequence[Any]) -> List[tuple]:
        """``(requirement, installed version or None)`` for each requirement that is not met: the
        distribution is absent, or installed at a version outside the range (an older monai is
        reported, to be upgraded, not accepted). Requirements whose marker excludes this platform
        are met."""
        from importlib import metadata

        from packaging.markers import default_environment

        importlib.invalidate_caches()
        unmet = []
        for requirement in requirements:
            if requirement.marker is not None and not requirement.marker.evaluate(default_environment()):
                continue
            try:
                installed = metadata.version(requirement.name)
            except metadata.PackageNotFoundError:
                unmet.append((requirement, None))
                continue
            if not requirement.specifier.contains(installed, prereleases=True):
                unmet.append((requirement, installed))
        return unmet

    def missingRequirements(self) -> List[str]:
        """The unmet requirements of ``Resources/requirements.txt`` as text, e.g.
        ``"monai>=1.4 (1.3.0 installed)"``."""
        return [f"{req} ({installed} installed)" if installed else str(req)
                for req, installed in self.unsatisfiedRequirements(self.loadRequirements())]

    def ensureDependencies(self, askConfirmation: bool = True) -> None:
        """Install or upgrade what ``Resources/requirements.txt`` needs, after asking once.

        torch goes through the PyTorch extension (``PyTorchUtils.installTorch`` with the file's
        range: it picks the CUDA build for the machine), everything else through
        ``slicer.packaging.pip_ensure`` (Slicer >= 5.8; ``slicer.util.pip_install`` before), given
        the requirement with its range, so pip upgrades a package installed at an older version.
        Never called at import time; the Widget calls it on Apply.

        Raises:
            DependencyError: the user declined, the PyTorch extension is missing, or a requirement
                is still not met after installing (the message names it; restart Slicer).
        """
        requirements = self.loadRequirements()
        unmet = self.unsatisfiedRequirements(requirements)
        if not unmet:
            return
        what = [f"{req} (installed: {installed}, will be upgraded)" if installed else str(req) for req, installed in unmet]
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                _("Saliency Trust needs these Python packages, which will be downloaded and "
                  "installed now (this can take several minutes):\n{packages}").format(
                    packages="\n".join(what)),
                _("Install Python packages")):
            raise DependencyError(_("Installation declined; the module cannot compute maps without: ")
                                  + ", ".join(what))
        torchRequirements = [req for req, _installed in unmet if req.name.lower() in TORCH_DISTRIBUTIONS]
        pipRequirements = [str(req) for req, _installed in unmet if req.name.lower() not in TORCH_DISTRIBUTIONS]
        for requirement in torchRequirements:
            try:
                import PyTorchUtils
            except ModuleNotFoundError as error:
                raise DependencyError(_("Saliency Trust needs the PyTorch extension: install "
                                        "\"PyTorch\" from the Extensions Manager, restart Slicer, "
                                        "then press Apply again.")) from error
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=False, torchVersionRequirement=str(requirement.specifier))
            if torch is None:
                raise DependencyError(_("PyTorch could not be installed by the PyTorch extension."))
        if pipRequirements:
            try:
                packaging = importlib.import_module("slicer.packaging")
            except ImportError:  # Slicer < 5.8
                packaging = None
            if packaging is not None and hasattr(packaging, "pip_ensure"):
                # Already asked above; pip_ensure offers a restart if an imported package changed.
                packaging.pip_ensure(pipRequirements, prompt_install=False, requester="Saliency Trust",
                                     skip_in_testing=False)
            else:
                slicer.util.pip_install(" ".join(f'"{req}"' for req in pipRequirements))
        stillUnmet = self.unsatisfiedRequirements(requirements)
        if stillUnmet:
            raise DependencyError(_("These Python packages are still missing or too old after installing: {what}. "
                                    "Restart Slicer and press Apply again; if it persists, install them from "
                                    "the Python console with slicer.packaging.pip_install.").format(
                what=", ".join(f"{req} ({installed or 'absent'})" for req, installed in stillUnmet)))

    @staticmethod
    def availableMethods() -> List[str]:
        """The saliency registry's names (the contract's list while the core cannot import yet)."""
        try:
            from SaliencyTrustLib.saliency import available_methods
            return list(available_methods())
        except ImportError:
            return list(CONTRACT_METHODS)

    # ---------------------------------------------------------------- MRML -> arrays

    @staticmethod
    def _vtkMatrixToArray(matrix) -> np.ndarray:
        return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])

    @staticmethod
    def _arrayToVtkMatrix(array: np.ndarray):
        matrix = vtk.vtkMatrix4x4()
        for r in range(4):
            for c in range(4):
                matrix.SetElement(r, c, float(array[r, c]))
        return matrix

    def ijkToWorldRAS(self, volumeNode) -> np.ndarray:
        """4x4 homogeneous matrix: voxel ``(i, j, k, 1)`` -> world RAS mm (parent transforms applied).

        Raises:
            ValueError: the volume sits under a non-linear transform (harden it first).
        """
        ijkToRas = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(ijkToRas)
        matrix = self._vtkMatrixToArray(ijkToRas)
        parent = volumeNode.GetParentTransformNode()
        if parent is not None:
            if not parent.IsTransformToWorldLinear():
                raise ValueError(_("Volume '{name}' is under a non-linear transform; harden the "
                                   "transform (Data module) first.").format(name=volumeNode.GetName()))
            toWorld = vtk.vtkMatrix4x4()
            parent.GetMatrixTransformToWorld(toWorld)
            matrix = self._vtkMatrixToArray(toWorld) @ matrix
        return matrix

    def imageVolumeFromNode(self, volumeNode):
        """A scalar volume node as the core's LPS ``ImageVolume`` (array ``(K, J, I)``, a copy).

        The geometry is the node's IJK->RAS (with parent transforms) turned to LPS, split into
        spacing (column norms), direction (unit columns) and origin (translation).
        """
        from SaliencyTrustLib.image import ImageVolume

        if volumeNode is None or volumeNode.GetImageData() is None:
            raise ValueError(_("Select an input volume that holds an image."))
        if volumeNode.GetImageData().GetNumberOfScalarComponents() != 1:
            raise ValueError(_("Volume '{name}' has {n} components; select a scalar (grey-level) "
                               "volume.").format(name=volumeNode.GetName(),
                                                 n=volumeNode.GetImageData().GetNumberOfScalarComponents()))
        ijkToLps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.ijkToWorldRAS(volumeNode)
        linear = ijkToLps[:3, :3]
        spacing = np.linalg.norm(linear, axis=0)
        direction = linear / spacing
        array = np.array(slicer.util.arrayFromVolume(volumeNode), copy=True)
        return ImageVolume(array, spacing=spacing, origin=ijkToLps[:3, 3], direction=direction,
                           metadata={"name": volumeNode.GetName(), "mrmlNodeID": volumeNode.GetID()})

    def createVolumeNode(self, volume, name: str = "volume"):
        """The core's ``ImageVolume`` (LPS, ``(K, J, I)``) as a scalar volume node (RAS geometry)."""
        node = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", self.scene.GenerateUniqueName(name))
        node.SetIJKToRASMatrix(self._arrayToVtkMatrix(volume.ijk_to_ras()))
        slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(volume.array))
        node.CreateDefaultDisplayNodes()
        return node

    def maskFromSegmentation(self, segmentationNode, referenceVolumeNode,
                             segmentIds: Optional[Sequence[str]] = None) -> np.ndarray:
        """The union of the segments (all, or ``segmentIds``) as bool ``(K, J, I)`` on the volume's grid.

        Exported by Slicer's segmentation logic with the volume as reference geometry, so the
        segmentation may have any geometry of its own (DICOM SEG, NRRD, NIfTI, drawn by hand).
        """
        segmentation = segmentationNode.GetSegmentation()
        ids = vtk.vtkStringArray()
        for segmentId in (segmentIds if segmentIds is not None else segmentation.GetSegmentIDs()):
            ids.InsertNextValue(segmentId)
        if ids.GetNumberOfValues() == 0:
            raise ValueError(_("Segmentation '{name}' has no segment.").format(
                name=segmentationNode.GetName()))
        labelmapNode = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "SaliencyTrustTmp")
        try:
            ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentationNode, ids, labelmapNode, referenceVolumeNode)
            if not ok or labelmapNode.GetImageData() is None:
                raise ValueError(_("Segmentation '{name}' could not be exported on the grid of "
                                   "'{ref}'.").format(name=segmentationNode.GetName(),
                                                      ref=referenceVolumeNode.GetName()))
            labels = slicer.util.arrayFromVolume(labelmapNode)
            expected = slicer.util.arrayFromVolume(referenceVolumeNode).shape
            if labels.shape != expected:
                raise ValueError(f"exported labelmap has shape {labels.shape}, volume {expected}")
            return labels > 0
        finally:
            self.scene.RemoveNode(labelmapNode)

    def maskFromROIs(self, roiNodes: Sequence[Any], referenceVolumeNode) -> np.ndarray:
        """Union of box ROIs as bool ``(K, J, I)``: a voxel is in when its centre is in a box.

        Each voxel centre ``(i, j, k)`` goes to world RAS through the volume's IJK->RAS, then into
        the ROI's own frame (inverse of its object-to-world matrix, so rotated boxes work), and is
        tested against the half-sizes. For a single-slice volume (a radiograph) the box's axis
        closest to the slice normal is not tested: a box drawn on a 2D image covers its plane
        whatever its depth.
        """
        shape = slicer.util.arrayFromVolume(referenceVolumeNode).shape  # (K, J, I)
        ijkToRas = self.ijkToWorldRAS(referenceVolumeNode)
        k, j, i = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
        ijk1 = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
        ras1 = ijkToRas @ ijk1
        mask = np.zeros(i.size, dtype=bool)
        sliceNormal = ijkToRas[:3, 2] / np.linalg.norm(ijkToRas[:3, 2])
        for roiNode in roiNodes:
            if roiNode is None:
                continue
            objectToWorld = self._vtkMatrixToArray(roiNode.GetObjectToWorldMatrix())
            local = np.linalg.inv(objectToWorld) @ ras1
            halfSize = np.array(roiNode.GetSize()) / 2.0
            tested = [0, 1, 2]
            if shape[0] == 1:
                axes = objectToWorld[:3, :3] / np.linalg.norm(objectToWorld[:3, :3], axis=0)
                tested.remove(int(np.argmax(np.abs(axes.T @ sliceNormal))))
            inside = np.ones(i.size, dtype=bool)
            for axis in tested:
                inside &= np.abs(local[axis]) <= halfSize[axis] + 1e-6
            mask |= inside
        return mask.reshape(shape)

    def requestFromParameterNode(self, p: SaliencyTrustParameterNode) -> EvaluationRequest:
        """Gather the parameter node's choices as arrays (GUI thread)."""
        criteria = [name for name, on in zip(CRITERIA, (p.runLocalization, p.runRandomization,
                                                         p.runRepeatability, p.runReproducibility,
                                                         p.runShortcut, p.runDataRandomization,
                                                         p.runFaithfulness, p.runRobustness)) if on]
        from SaliencyTrustLib.model_spec import parse_kwargs

        labelRandomized = p.labelRandomizedModelPath
        if labelRandomized is not None and str(labelRandomized) in ("", "."):  # the path field's "unset"
            labelRandomized = None

        return self.makeRequest(p.inputVolume, p.modelPath, list(p.methods),
                                segmentationNode=p.groundTruthSegmentation,
                                roiNodes=list(p.groundTruthROIs), baselineVolumeNodes=list(p.baselineVolumes),
                                targetClass=None if p.targetClass < 0 else p.targetClass,
                                criteria=criteria, granularity=p.granularity, seed=p.seed,
                                device=p.device, modelFactory=p.modelFactory.strip() or None,
                                modelKwargs=parse_kwargs(p.modelKwargs.strip()) or None,
                                preprocessing=self.preprocessingFromChoices(
                                    p.preprocessingPreset, p.modelPath, inChannels=p.inChannels,
                                    inputSize=p.inputSize, resizeMode=p.resizeMode, intensity=p.intensity),
                                shortcutSegmentationNode=p.shortcutSegmentation,
                                labelRandomizedModelPath=labelRandomized,
                                faithfulnessSteps=p.faithfulnessSteps, faithfulnessFill=p.faithfulnessFill,
                                robustnessShift=p.robustnessShift)

    @staticmethod
    def preprocessingFromChoices(preset: str, modelPath=None, inChannels: int = 0, inputSize: int = 0,
                                 resizeMode: str = "preset", intensity: str = ""):
        """The panel's preprocessing choices as a :class:`SaliencyTrustLib.preprocessing.Preprocessing`.

        Args:
            preset: one of :data:`PREPROCESSING_CHOICES`; "from bundle metadata" starts from the
                bundle's ``network_data_format`` (``modelPath`` a bundle folder, or a file in its
                ``models/``), else from the defaults.
            modelPath: the model (only read for "from bundle metadata").
            inChannels, inputSize: overrides; 0 keeps the preset's.
            resizeMode: "preset" keeps the preset's, else "squash", "pad" or "crop".
            intensity: "" keeps the preset's, else an intensity of ``Preprocessing``.

        Returns:
            None for "from bundle metadata" without overrides (the Logic then reads the bundle's
            metadata itself, as every front end does), else the ``Preprocessing``.

        Raises:
            ValueError: an unknown preset, resize mode or intensity (the message says which).
        """
        from SaliencyTrustLib.model_spec import bundle_preprocessing
        from SaliencyTrustLib.preprocessing import Preprocessing

        overrides = {"in_channels": int(inChannels) or None, "input_size": int(inputSize) or None,
                     "resize": None if resizeMode in ("", "preset") else resizeMode,
                     "intensity": (intensity or "").strip() or None}
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if preset == PREPROCESSING_CHOICES[0]:
            if not overrides:
                return None
            path = Path(modelPath) if modelPath else None
            bundle = None if path is None else (path if path.is_dir() else
                                                (path.parent.parent if path.parent.name == "models" else None))
            return Preprocessing(**{**(bundle_preprocessing(bundle) if bundle else {}), **overrides})
        if preset not in PREPROCESSING_CHOICES:
            raise ValueError(f"preprocessing preset must be one of {list(PREPROCESSING_CHOICES)}, got {preset!r}.")
        return Preprocessing.preset(preset, **overrides)

    def makeRequest(self, inputVolumeNode, modelPath, methods: Sequence[str], segmentationNode=None,
                    roiNodes: Sequence[Any] = (), baselineVolumeNodes: Sequence[Any] = (),
                    targetClass: Optional[int] = None, criteria: Sequence[str] = STUDY_CRITERIA,
                    granularity: str = "blocks", seed: int = 0, device: str = "auto",
                    modelFactory: Optional[str] = None, modelKwargs: Optional[Dict[str, Any]] = None,
                    preprocessing: Any = None, workDirectory: Optional[Path] = None,
                    shortcutSegmentationNode=None, labelRandomizedModelPath=None,
                    inMemoryRoles: Sequence[str] = (), faithfulnessSteps: int = 20,
                    faithfulnessFill: str = FAITHFULNESS_FILLS[0], robustnessShift: int = 2,
                    robustnessNoiseSigma: Optional[float] = None) -> EvaluationRequest:
        """Validate the choices and convert the nodes to arrays (GUI thread).

        ``modelFactory`` / ``modelKwargs`` / ``preprocessing`` describe a lab's own model (see
        :class:`EvaluationRequest`); ``workDirectory`` defaults to a folder per input volume under
        the temporary directory.

        The criteria beyond the study (:data:`BEYOND_CRITERIA`) take:
        ``shortcutSegmentationNode``, the known confounder's region (a segmentation, exported on the
        input's grid like the ground truth; read only when ``"shortcut"`` is in ``criteria``);
        ``labelRandomizedModelPath``, the model trained on permuted labels (default: the bundle's
        ``models/model_label_randomized.pt`` when ``modelPath`` is a bundle folder that has one;
        ``inMemoryRoles`` names the models :meth:`process` got in memory, e.g. ``label_randomized``);
        ``faithfulnessSteps`` / ``faithfulnessFill`` and ``robustnessShift`` / ``robustnessNoiseSigma``
        (see :class:`EvaluationRequest`).

        Raises:
            ValueError: with the name of what is wrong and how to fix it.
        """
        if inputVolumeNode is None:
            raise ValueError(_("Select an input volume."))
        if not methods:
            raise ValueError(_("Select at least one saliency method."))
        unknown = sorted(set(criteria) - set(CRITERIA))
        if unknown:
            raise ValueError(f"unknown criteria {unknown}; choose among {list(CRITERIA)}")
        self.resolveDevice(device)  # a wrong choice fails here, before any long work
        modelPath = Path(modelPath) if modelPath else Path(DEFAULT_BUNDLE_DIR)
        if not modelPath.exists():
            raise ValueError(_("Model '{path}' does not exist: choose a MONAI bundle folder or a "
                               "model file.").format(path=modelPath))
        modelFactory = self.checkedFactory(modelFactory)
        image = self.imageVolumeFromNode(inputVolumeNode)
        groundTruth = None
        if segmentationNode is not None:
            groundTruth = self.maskFromSegmentation(segmentationNode, inputVolumeNode)
        roiNodes = [n for n in roiNodes if n is not None]
        if roiNodes:
            boxes = self.maskFromROIs(roiNodes, inputVolumeNode)
            groundTruth = boxes if groundTruth is None else (groundTruth | boxes)
        if "localization" in criteria and groundTruth is None:
            raise ValueError(_("Localization utility needs ground truth: select a segmentation or "
                               "ROI boxes, or untick the criterion."))
        self.checkedBeyondSettings(methods, faithfulnessSteps, faithfulnessFill, robustnessShift, robustnessNoiseSigma)
        shortcut = None
        if "shortcut" in criteria:
            if shortcutSegmentationNode is None:
                raise ValueError(_("The shortcut criterion scores each map against the region of a known "
                                   "confounder (a burned-in marker): select the marker region under Shortcut "
                                   "region (marker), or untick the criterion."))
            shortcut = self.maskFromSegmentation(shortcutSegmentationNode, inputVolumeNode)
            if not shortcut.any():
                raise ValueError(_("The shortcut region '{name}' has no voxel on the grid of '{image}': select "
                                   "the marker region of this image or untick the criterion.").format(
                    name=shortcutSegmentationNode.GetName(), image=inputVolumeNode.GetName()))
        labelRandomized = None
        if "data_randomization" in criteria and "label_randomized" not in inMemoryRoles:
            labelRandomized = self.labelRandomizedModel(modelPath, labelRandomizedModelPath)
        baselineImages = [self.imageVolumeFromNode(n) for n in baselineVolumeNodes
                          if n is not None and n.GetID() != inputVolumeNode.GetID()]
        request = EvaluationRequest(image=image, groundTruth=groundTruth, baselineImages=baselineImages,
                                    modelPath=modelPath, methods=list(methods), targetClass=targetClass,
                                    criteria=list(criteria), granularity=granularity, seed=int(seed),
                                    inputNodeID=inputVolumeNode.GetID(), device=device, modelFactory=modelFactory,
                                    modelKwargs=modelKwargs, preprocessing=preprocessing, workDirectory=None,
                                    shortcut=shortcut, labelRandomizedModelPath=labelRandomized,
                                    faithfulnessSteps=int(faithfulnessSteps), faithfulnessFill=faithfulnessFill,
                                    robustnessShift=int(robustnessShift),
                                    robustnessNoiseSigma=None if robustnessNoiseSigma is None
                                    else float(robustnessNoiseSigma))
        if workDirectory is None:
            import tempfile

            workDirectory = Path(tempfile.gettempdir()) / "SaliencyTrust" / self.requestDigest(request)
        request.workDirectory = Path(workDirectory)
        return request

    @staticmethod
    def labelRandomizedModel(modelPath: Path, labelRandomizedModelPath=None) -> Path:
        """The label-randomized model of the ``data_randomization`` criterion: the given file, else
        the bundle's ``models/model_label_randomized.pt`` (``modelPath`` a bundle folder).

        Raises:
            ValueError: the given file does not exist, or none was given and the bundle has none.
        """
        if labelRandomizedModelPath is not None:
            path = Path(labelRandomizedModelPath)
            if not path.exists():
                raise ValueError(_("Label-randomized model '{path}' does not exist.").format(path=path))
            return path
        bundled = Path(modelPath) / LABEL_RANDOMIZED_FILE
        if Path(modelPath).is_dir() and bundled.is_file():
            return bundled
        raise ValueError(_("Data randomization compares the maps with those of the same architecture trained "
                           "on permuted labels: choose that label-randomized model (or give the bundle "
                           "{file}), or untick the criterion.").format(file=LABEL_RANDOMIZED_FILE))

    @staticmethod
    def checkedBeyondSettings(methods: Sequence[str], faithfulnessSteps: int, faithfulnessFill: str,
                              robustnessShift: int, robustnessNoiseSigma: Optional[float]) -> None:
        """Check the faithfulness / robustness settings as the pipeline will (``EvaluationSettings``
        refuses them with a sentence naming the setting), before any long work.

        Raises:
            ValueError: e.g. ``faithfulness_fill must be one of ['blur', 'zero', 'mean'], got 'black'.``
        """
        from SaliencyTrustLib.cohort.settings import EvaluationSettings

        EvaluationSettings(methods=tuple(methods), faithfulness_steps=int(faithfulnessSteps),
                           faithfulness_fill=faithfulnessFill, robustness_shift=int(robustnessShift),
                           robustness_noise_sigma=robustnessNoiseSigma)

    @staticmethod
    def checkedFactory(modelFactory: Optional[str]) -> Optional[str]:
        """``module:callable`` or ``file.py:callable`` checked for shape (a ``.py`` file must exist
        and is made absolute); the factory itself is imported by the study process.

        Raises:
            ValueError: no ``:callable`` part, or a ``.py`` file that does not exist.
        """
        if not modelFactory:
            return None
        module, _sep, attribute = modelFactory.strip().rpartition(":")
        if not module or not attribute or not attribute.isidentifier():
            raise ValueError(_("Model factory '{factory}' is not MODULE:CALLABLE; write e.g. "
                               "mylab.models:build or /path/to/models.py:build.").format(factory=modelFactory))
        if module.endswith(".py"):
            if not Path(module).is_file():
                raise ValueError(_("Model factory file '{file}' does not exist.").format(file=module))
            module = str(Path(module).resolve())
        return f"{module}:{attribute}"

    @staticmethod
    def requestDigest(request: EvaluationRequest) -> str:
        """16 hex digits of SHA-256 over everything that changes the results (voxels, geometry,
        ground truth, shortcut region, baseline images, models - the label-randomized one too -,
        methods, criteria, settings): the default work folder,
        so the same Apply resumes its run and another never meets its files."""
        import hashlib
        import json

        digest = hashlib.sha256()
        for volume in [request.image] + list(request.baselineImages):
            array = np.ascontiguousarray(volume.array)
            digest.update(array.tobytes())
            digest.update(repr((array.shape, str(array.dtype), tuple(np.asarray(volume.spacing, float)),
                                tuple(np.asarray(volume.origin, float)),
                                np.asarray(volume.direction, float).tobytes())).encode())
        digest.update(b"no ground truth" if request.groundTruth is None else np.packbits(request.groundTruth).tobytes())
        digest.update(b"no shortcut region" if request.shortcut is None else
                      b"shortcut region" + np.packbits(request.shortcut).tobytes())
        preprocessing = request.preprocessing.to_dict() if request.preprocessing is not None else None
        labelRandomized = request.labelRandomizedModelPath
        digest.update(json.dumps({
            "model": str(Path(request.modelPath).resolve()), "factory": request.modelFactory,
            "kwargs": request.modelKwargs, "methods": request.methods, "criteria": request.criteria,
            "target": request.targetClass, "granularity": request.granularity, "seed": request.seed,
            "device": request.device, "preprocessing": preprocessing,
            "label_randomized": None if labelRandomized is None else str(Path(labelRandomized).resolve()),
            "faithfulness": [request.faithfulnessSteps, request.faithfulnessFill],
            "robustness": [request.robustnessShift, request.robustnessNoiseSigma]},
            sort_keys=True, default=str).encode())
        return digest.hexdigest()[:16]

    # ---------------------------------------------------------------- the computation (worker)

    def studyInputs(self, request: EvaluationRequest, models: Optional[Dict[str, Any]] = None):
        """The request as the core's study: ``(cohort, models, settings)`` for
        :func:`SaliencyTrustLib.cohort.study_steps` (the one pipeline every front end calls).

        One image is judged with two named settings that differ from a cohort run, recorded in the
        scorecard: ``study_selection="all"`` (the image is evaluated whatever its label) and
        ``localization_baseline="randomized_model"`` (no average training mask exists for one
        image). Baseline images join the different-image baseline as reference studies. The
        shortcut region is the study's ``shortcut``; the label-randomized model is the models'
        ``label_randomized`` (``models["label_randomized"]`` in memory), built like the model.
        """
        from SaliencyTrustLib.cohort import Cohort, EvaluationSettings, StudyModels, StudyRef
        from SaliencyTrustLib.model_spec import ModelSpec, bundle_preprocessing
        from SaliencyTrustLib.preprocessing import Preprocessing

        if models is not None:
            labelRandomized = models.get("label_randomized")
            if labelRandomized is None and request.labelRandomizedModelPath is not None:  # a file beside them
                labelRandomized = ModelSpec(path=str(request.labelRandomizedModelPath))
            studyModels = StudyModels(original=models["model"], replicate=models.get("replicate"),
                                      second_arch=models.get("second"), label_randomized=labelRandomized)
            bundle = None
        else:
            path = Path(request.modelPath)
            factory = {"factory": request.modelFactory, "kwargs": dict(request.modelKwargs or {})} \
                if request.modelFactory else {}
            if path.is_dir() and (path / "models" / "model.pt").is_file() and not factory:
                studyModels = StudyModels.from_bundle(str(path))
            else:
                studyModels = StudyModels(original=ModelSpec(path=str(path), **factory))
            if request.labelRandomizedModelPath is not None:  # same architecture: the model's factory
                studyModels.label_randomized = ModelSpec(path=str(request.labelRandomizedModelPath), **factory)
            bundle = path if path.is_dir() else (path.parent.parent if path.parent.name == "models" else None)
        preprocessing = request.preprocessing or Preprocessing(**(bundle_preprocessing(bundle) if bundle else {}))
        settings = EvaluationSettings(
            methods=tuple(request.methods), criteria=tuple(request.criteria), seed=int(request.seed),
            batch_size=1, sample_size=1, preprocessing=preprocessing, cascade_granularity=request.granularity,
            study_selection="all", localization_baseline="randomized_model", target_class=request.targetClass,
            faithfulness_steps=request.faithfulnessSteps, faithfulness_fill=request.faithfulnessFill,
            robustness_shift=request.robustnessShift, robustness_noise_sigma=request.robustnessNoiseSigma)
        study = StudyRef(INPUT_STUDY_ID, request.image, request.groundTruth,
                         label=1 if request.groundTruth is not None else None, shortcut=request.shortcut)
        references = [StudyRef(f"baseline-{index:02d}", image) for index, image in enumerate(request.baselineImages)]
        cohort = Cohort([study], reference_studies=references,
                        source=f"3D Slicer: {request.image.metadata.get('name', 'input volume')}")
        return cohort, studyModels, settings

    def evaluationSteps(self, request: EvaluationRequest, result: EvaluationResult,
                        models: Optional[Dict[str, Any]] = None, process: Any = None) -> Iterator[Step]:
        """The work as steps: the body runs in the worker (no MRML), ``Step.apply`` on the GUI thread.

        The core's study pipeline computes everything (maps, cascade, second models, criteria,
        scorecard) in ``request.workDirectory``: in a child process (:meth:`studyProcess`; its
        request and inputs are written here first) or, for ``models`` given in memory, on this
        thread. Each map is shown as soon as the pipeline writes it back on the input's grid, the
        scorecard table and plot at the end. Cancel (killing the process, or stopping the
        iteration) keeps what is committed: the same Apply again resumes.

        Args:
            request: see :meth:`makeRequest`.
            result: filled as the steps run.
            models: torch models already in memory (``model``, optional ``replicate``, ``second``
                and ``label_randomized``) instead of loading ``request.modelPath``; they run in process.
            process: the :class:`SaliencyTrustLib.cohort.request_process.StudyProcess` to run
                (default :meth:`studyProcess`); the runner's Cancel kills it.

        Raises:
            EvaluationCancelled: the process was killed (Cancel).
            ValueError / RuntimeError: the pipeline's one-line error (a process failure carries
                the child's output in ``error.traceback``).
        """
        from SaliencyTrustLib.cohort.request_process import StudyProcessCancelled, StudyProcessError

        started, startedNs = time.time(), time.time_ns()
        cohort, studyModels, settings = self.studyInputs(request, models)
        workDirectory = Path(request.workDirectory)
        device = self.resolveDevice(request.device)
        yield Step(0.0, _("Loading the model(s)"))
        if models is None:
            from SaliencyTrustLib.cohort.cli_request import write_request

            process = process if process is not None else self.studyProcess(request)
            self._clearRequestInputs(Path(process.request).parent)
            write_request(process.request, cohort, studyModels, settings, workDirectory, device=device, restart=True)
            steps = process.progress()
        else:
            from SaliencyTrustLib.cohort import study_steps

            steps = study_steps(cohort, studyModels, settings, workDirectory, restart=True, device=device)
        try:
            results = yield from self._followPipeline(steps, request, result, workDirectory, startedNs)
        except StudyProcessCancelled as cancelled:
            raise EvaluationCancelled("cancelled by the user") from cancelled
        except StudyProcessError as failed:
            error = RuntimeError(str(failed))
            error.traceback = "\n".join(failed.log)
            raise error from None
        failure = results["failures"].get(INPUT_STUDY_ID)
        if failure:
            raise ValueError(f"{request.image.metadata.get('name', 'the input')}: {failure}")
        self._readResults(result, results, workDirectory)
        for method in results["methods"]:
            if method not in result.mapNodes:
                yield Step(0.99, f"{method}: map computed", self._applyOnGui(self._applyMap, result, method))
        result.status = (f"{len(results['methods'])} method(s), {len(result.scorecard.rows)} criteria rows in "
                         f"{time.time() - started:.1f} s. " + self.verdictSummary(result))
        yield Step(1.0, result.status, self._applyOnGui(self._applyTables, result))

    def _followPipeline(self, steps, request: EvaluationRequest, result: EvaluationResult,
                        workDirectory: Path, startedNs: int):
        """Steps from the pipeline's progress (a generator of ``Progress`` returning the results):
        each native map written during this run is read and shown at once; returns the results.

        Maps on disk from before this run (another configuration's, in a reused folder) are not
        shown here; the results list this run's maps, read at the end.
        """
        from SaliencyTrustLib.cohort.compute import native_relpath

        while True:
            try:
                progress = next(steps)
            except StopIteration as finished:
                return finished.value
            fraction = min(0.99, progress.done / max(progress.total, 1))
            for method in request.methods:
                path = workDirectory / native_relpath(INPUT_STUDY_ID, method)
                if method not in result.maps and path.is_file() and path.stat().st_mtime_ns >= startedNs:
                    result.maps[method] = self._readNativeMap(path)
                    yield Step(fraction, f"{method}: map computed", self._applyOnGui(self._applyMap, result, method))
            yield Step(fraction, progress.message)

    @staticmethod
    def _clearRequestInputs(folder: Path) -> None:
        """Remove the inputs an earlier request wrote (their names carry their content hash)."""
        import shutil

        from SaliencyTrustLib.cohort.cli_request import INPUTS_DIR

        shutil.rmtree(folder / INPUTS_DIR, ignore_errors=True)

    @staticmethod
    def pythonExecutable() -> str:
        """The interpreter of the study process: Slicer's ``PythonSlicer`` (it sets up Slicer's
        Python environment), else this interpreter (outside Slicer, tests)."""
        import shutil

        if getattr(slicer, "app", None) is not None:
            found = shutil.which("PythonSlicer")
            if found:
                return found
        return sys.executable

    def studyProcess(self, request: EvaluationRequest):
        """The child process that will run ``request`` (not started): ``python -m SaliencyTrustLib
        run-request <work folder>/request/request.json`` with this module's ``SaliencyTrustLib``
        first on its path; its output is kept for the error dialog."""
        from SaliencyTrustLib.cohort.request_process import StudyProcess

        return StudyProcess(Path(request.workDirectory) / "request" / "request.json",
                            python=self.pythonExecutable(), package_dir=_MODULE_DIR)

    @staticmethod
    def _readNativeMap(path: Path) -> np.ndarray:
        from SaliencyTrustLib.io import read_image

        return np.asarray(read_image(path).array, dtype=np.float32)

    def _readResults(self, result: EvaluationResult, results: Dict[str, Any], workDirectory: Path) -> None:
        """Fill ``result`` from the pipeline's results: prediction, maps, curves, scorecard."""
        from SaliencyTrustLib.criteria import Scorecard

        result.results = results
        prediction = results["predictions"].get(INPUT_STUDY_ID, {})
        result.predictedClass = None if prediction.get("predicted") is None else int(prediction["predicted"])
        result.targetClass = None if prediction.get("target") is None else int(prediction["target"])
        result.probability = prediction.get("probability")
        for method, relpath in results["native_maps"].get(INPUT_STUDY_ID, {}).items():
            if method not in result.maps:
                result.maps[method] = self._readNativeMap(workDirectory / relpath)
        baseline = results.get("different_image_baseline", {})
        result.differentImageBaseline = {m: (v.get("ssim") if v.get("ssim") is not None else float("nan"))
                                         for m, v in baseline.items() if m in results["methods"]}
        randomization = results.get("randomization")
        if randomization:
            labels = [label.split("_", 1)[1] if label != "original" else label
                      for label in randomization["state_labels"]]
            result.curves = {m: [(labels[0], 1.0)] + [(state, float("nan") if s["mean"] is None else s["mean"])
                                                      for state, s in zip(labels[1:], c["ssim"])]
                             for m, c in randomization["curves"].items() if m in results["methods"]}
        card = Scorecard.from_dict(results["scorecard"])
        card.params.update({
            "source": "3D Slicer SaliencyTrust module (one study)",
            "image": result.request.image.metadata.get("name", ""),
            "model": str(result.request.modelPath),
            "predicted_class": result.predictedClass, "target_class": result.targetClass,
            "probability": result.probability,
            "n_baseline_images": len(result.request.baselineImages),
            "curves": {m: [[state, float(v)] for state, v in c] for m, c in result.curves.items()},
            "different_image_baseline": dict(result.differentImageBaseline),
            "results_folder": str(workDirectory)})
        result.scorecard = card

    @staticmethod
    def _applyOnGui(function: Callable, *args: Any) -> Callable[[], None]:
        """A closure that :class:`SaliencyTrustRunner` calls on the GUI thread."""
        return lambda: function(*args)

    @staticmethod
    def resolveDevice(device: str = "auto") -> str:
        """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; other values checked."""
        import torch

        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was chosen but torch sees no GPU: choose 'auto' or 'cpu'")
        return device

    def _applyMap(self, result: EvaluationResult, method: str) -> None:
        inputNode = self.scene.GetNodeByID(result.request.inputNodeID)
        if not result.mapNodes:
            for kind in ("map", "segmentation", "table", "curves", "plot"):
                self._removePreviousOutputs(result.request.inputNodeID, kind)
        result.mapNodes[method] = self.createMapVolumeNode(result.maps[method], inputNode, method)
        result.segmentationNodes[method] = self.createMapSegmentationNode(result.maps[method], inputNode, method)
        if len(result.mapNodes) == 1:
            self.showMap(result, method)

    def _applyTables(self, result: EvaluationResult) -> None:
        inputNode = self.scene.GetNodeByID(result.request.inputNodeID)
        result.tableNode = self.createTableNode(result, inputNode)
        result.curveTableNode, result.plotChartNode = self.createPlotNodes(result, inputNode)

    # ---------------------------------------------------------------- arrays -> MRML (GUI thread)

    def _removePreviousOutputs(self, inputNodeID: str, kind: str) -> None:
        for node in list(self._nodesWithAttribute(OUTPUT_ATTRIBUTE)):
            if node.GetAttribute("SaliencyTrust.Input") == inputNodeID and \
                    node.GetAttribute(OUTPUT_ATTRIBUTE) == kind:
                self.scene.RemoveNode(node)

    def _nodesWithAttribute(self, attribute: str) -> Iterator[Any]:
        nodes = self.scene.GetNodes()
        for index in range(nodes.GetNumberOfItems()):
            node = nodes.GetItemAsObject(index)
            if node.GetAttribute(attribute) is not None:
                yield node

    def _colorNodeID(self) -> str:
        """ID of the overlay colour table, added to the scene on first use."""
        for index in range(self.scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode")):
            node = self.scene.GetNthNodeByClass(index, "vtkMRMLColorTableNode")
            if node.GetName() == MAP_COLOR_TABLE_NAME:
                return node.GetID()
        table = self.scene.AddNewNodeByClass("vtkMRMLColorTableNode", MAP_COLOR_TABLE_NAME)
        table.SetTypeToUser()
        table.SetNumberOfColors(256)
        positions = [p[0] for p in MAP_COLOR_POINTS]
        for index in range(256):
            rgb = [float(np.interp(index / 255.0, positions, [p[c] for p in MAP_COLOR_POINTS])) for c in (1, 2, 3)]
            table.SetColor(index, f"{index / 255.0:.3f}", *rgb, 1.0)
        table.SetAttribute(OUTPUT_ATTRIBUTE, "colors")
        return table.GetID()

    def createMapVolumeNode(self, mapArray: np.ndarray, referenceVolumeNode, method: str):
        """A scalar volume holding ``mapArray`` ``(K, J, I)`` with the reference's geometry.

        The IJK->RAS matrix and parent transform are copied from the input, so the overlay lies
        exactly on it; the display is a colour map over [0, 1] with near-zero values transparent.
        """
        name = self.scene.GenerateUniqueName(f"{referenceVolumeNode.GetName()} saliency {method}")
        node = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        ijkToRas = vtk.vtkMatrix4x4()
        referenceVolumeNode.GetIJKToRASMatrix(ijkToRas)
        node.SetIJKToRASMatrix(ijkToRas)
        node.SetAndObserveTransformNodeID(referenceVolumeNode.GetTransformNodeID())
        slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(mapArray, dtype=np.float32))
        node.SetAttribute(OUTPUT_ATTRIBUTE, "map")
        node.SetAttribute("SaliencyTrust.Input", referenceVolumeNode.GetID())
        node.SetAttribute("SaliencyTrust.Method", method)
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        display.SetAndObserveColorNodeID(self._colorNodeID())
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, 1.0)
        display.AutoThresholdOff()
        display.SetApplyThreshold(True)
        display.SetLowerThreshold(OVERLAY_TRANSPARENT_BELOW)
        display.SetUpperThreshold(2.0)  # above the maximum 1: the peak must stay visible
        return node

    def createMapSegmentationNode(self, mapArray: np.ndarray, referenceVolumeNode, method: str,
                                  threshold: float = MAP_SEGMENTATION_THRESHOLD):
        """The thresholded map (``map >= threshold``) as a segmentation node on the input's grid.

        The mask becomes a labelmap with the input's IJK->RAS and parent transform, imported by
        Slicer's segmentation logic (its geometry is the input's); one segment, named after the
        method and threshold, coloured red; shown as an outline. An all-below map gives an empty
        segment. The same threshold makes the DICOM SEG of the export.
        """
        name = self.scene.GenerateUniqueName(f"{referenceVolumeNode.GetName()} saliency {method} >= {threshold:g}")
        labels = np.ascontiguousarray(np.asarray(mapArray) >= threshold, dtype=np.uint8)
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "SaliencyTrustTmp")
        try:
            ijkToRas = vtk.vtkMatrix4x4()
            referenceVolumeNode.GetIJKToRASMatrix(ijkToRas)
            labelmap.SetIJKToRASMatrix(ijkToRas)
            labelmap.SetAndObserveTransformNodeID(referenceVolumeNode.GetTransformNodeID())
            slicer.util.updateVolumeFromArray(labelmap, labels)
            segmentation = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
            segmentation.SetAndObserveTransformNodeID(referenceVolumeNode.GetTransformNodeID())
            segmentation.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolumeNode)
            if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation):
                raise ValueError(f"the {method} map could not be made a segmentation")
        finally:
            self.scene.RemoveNode(labelmap)
        ids = vtk.vtkStringArray()
        segmentation.GetSegmentation().GetSegmentIDs(ids)
        if ids.GetNumberOfValues() == 0:  # nothing reached the threshold: an empty segment, still named
            segmentation.GetSegmentation().AddEmptySegment("", f"{method} >= {threshold:g}")
        else:
            segment = segmentation.GetSegmentation().GetSegment(ids.GetValue(0))
            segment.SetName(f"{method} >= {threshold:g}")
            segment.SetColor(0.9, 0.1, 0.1)
        segmentation.SetAttribute(OUTPUT_ATTRIBUTE, "segmentation")
        segmentation.SetAttribute("SaliencyTrust.Input", referenceVolumeNode.GetID())
        segmentation.SetAttribute("SaliencyTrust.Method", method)
        segmentation.SetAttribute("SaliencyTrust.Threshold", f"{threshold:g}")
        segmentation.CreateDefaultDisplayNodes()
        display = segmentation.GetDisplayNode()
        if display is not None:
            display.SetVisibility2DFill(False)
            display.SetVisibility2DOutline(True)
            display.SetVisibility(False)
        return segmentation

    def createTableNode(self, result: EvaluationResult, referenceVolumeNode):
        """The scorecard as a table node: method, criterion, value, baseline, passed, rule."""
        name = self.scene.GenerateUniqueName(f"{referenceVolumeNode.GetName()} saliency trust")
        table = self.scene.AddNewNodeByClass("vtkMRMLTableNode", name)
        table.SetAttribute(OUTPUT_ATTRIBUTE, "table")
        table.SetAttribute("SaliencyTrust.Input", referenceVolumeNode.GetID())
        columns = {}
        for columnName, arrayClass in (("method", vtk.vtkStringArray), ("criterion", vtk.vtkStringArray),
                                       ("value", vtk.vtkDoubleArray), ("baseline", vtk.vtkDoubleArray),
                                       ("passed", vtk.vtkStringArray), ("spearman", vtk.vtkDoubleArray),
                                       ("rule", vtk.vtkStringArray)):
            array = arrayClass()
            array.SetName(columnName)
            columns[columnName] = array
        def number(value) -> float:
            return float("nan") if value is None else float(value)

        for row in result.scorecard.rows:
            columns["method"].InsertNextValue(row.method)
            columns["criterion"].InsertNextValue(row.criterion)
            columns["value"].InsertNextValue(number(row.value))
            columns["baseline"].InsertNextValue(number(row.baseline))
            columns["passed"].InsertNextValue("n/a" if row.passed is None else ("pass" if row.passed else "fail"))
            columns["spearman"].InsertNextValue(number(row.details.get("spearman_mean")))
            columns["rule"].InsertNextValue(f"{row.rule} (baseline: {row.baseline_name})")
        for array in columns.values():
            table.AddColumn(array)
        table.SetColumnDescription("value", "the method's score on this image (AUPRC, SSIM or insertion - "
                                            "deletion area; the rule says which)")
        table.SetColumnDescription("baseline", "the score the method is compared with")
        table.SetColumnDescription("passed", "pass / fail / n/a (no baseline); the rule column says why")
        table.SetColumnDescription("spearman", "Spearman rank correlation beside SSIM (Binder et al. 2023)")
        table.SetColumnDescription("rule", "the pass rule of the criterion (Arun et al. 2021; beyond the study: "
                                           "the criterion's own reference)")
        table.SetUseColumnTitleAsColumnHeader(True)
        return table

    def createPlotNodes(self, result: EvaluationResult, referenceVolumeNode):
        """Cascading randomization curves (SSIM vs state) and the baseline, as a plot chart."""
        if not result.curves:
            return None, None
        base = referenceVolumeNode.GetName()
        curveTable = self.scene.AddNewNodeByClass(
            "vtkMRMLTableNode", self.scene.GenerateUniqueName(f"{base} randomization curves"))
        curveTable.SetAttribute(OUTPUT_ATTRIBUTE, "curves")
        curveTable.SetAttribute("SaliencyTrust.Input", referenceVolumeNode.GetID())
        states = [state for state, _value in next(iter(result.curves.values()))]
        stateIndex = vtk.vtkDoubleArray()
        stateIndex.SetName("state")
        stateNames = vtk.vtkStringArray()
        stateNames.SetName("state name")
        for index, state in enumerate(states):
            stateIndex.InsertNextValue(index)
            stateNames.InsertNextValue(state)
        curveTable.AddColumn(stateIndex)
        curveTable.AddColumn(stateNames)
        chart = self.scene.AddNewNodeByClass(
            "vtkMRMLPlotChartNode", self.scene.GenerateUniqueName(f"{base} randomization"))
        chart.SetAttribute(OUTPUT_ATTRIBUTE, "plot")
        chart.SetAttribute("SaliencyTrust.Input", referenceVolumeNode.GetID())
        chart.SetTitle("Cascading randomization: SSIM to the original map")
        chart.SetXAxisTitle("randomized up to state (top-down)")
        chart.SetYAxisTitle("SSIM")
        columns = list(result.curves.items())
        for method, value in result.differentImageBaseline.items():
            if np.isfinite(value):
                columns.append((f"{method} different-image baseline", [(s, value) for s in states]))
        for column, points in columns:
            values = vtk.vtkDoubleArray()
            values.SetName(column)
            for _state, value in points:
                values.InsertNextValue(float(value))
            curveTable.AddColumn(values)
            series = self.scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{base} {column}")
            series.SetAttribute(OUTPUT_ATTRIBUTE, "plot")
            series.SetAttribute("SaliencyTrust.Input", referenceVolumeNode.GetID())
            series.SetAndObserveTableNodeID(curveTable.GetID())
            series.SetXColumnName("state")
            series.SetYColumnName(column)
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            if column.endswith("baseline"):
                series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleDash)
                series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
            chart.AddAndObservePlotSeriesNodeID(series.GetID())
        return curveTable, chart

    def showMap(self, result: EvaluationResult, method: str, opacity: float = 0.5) -> None:
        """Overlay one method's map on the input in every slice view (pure MRML, no Qt)."""
        mapNode = result.mapNodes.get(method)
        if mapNode is None:
            raise ValueError(f"no map for method {method!r}; computed: {list(result.mapNodes)}")
        compositeNodes = self.scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
        for index in range(compositeNodes.GetNumberOfItems()):
            composite = compositeNodes.GetItemAsObject(index)
            composite.SetBackgroundVolumeID(result.request.inputNodeID)
            composite.SetForegroundVolumeID(mapNode.GetID())
            composite.SetForegroundOpacity(float(opacity))
        for shown, segmentation in result.segmentationNodes.items():  # the shown map's outline only
            display = segmentation.GetDisplayNode() if segmentation is not None else None
            if display is not None:
                display.SetVisibility(shown == method)

    def setOverlayOpacity(self, opacity: float) -> None:
        """Opacity of the map overlay in every slice view."""
        compositeNodes = self.scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
        for index in range(compositeNodes.GetNumberOfItems()):
            compositeNodes.GetItemAsObject(index).SetForegroundOpacity(float(opacity))

    def showPlot(self, plotChartNode) -> None:
        """Show the chart in the layout's plot view (needs the application; no-op headless)."""
        app = getattr(slicer, "app", None)
        if app is None or not hasattr(app, "layoutManager") or app.layoutManager() is None:
            return
        slicer.modules.plots.logic().ShowChartInLayout(plotChartNode)

    # ---------------------------------------------------------------- entry points

    def startEvaluation(self, request: EvaluationRequest, onProgress=None, onFinished=None,
                        synchronous: bool = False, models: Optional[Dict[str, Any]] = None) -> SaliencyTrustRunner:
        """Run the evaluation: followed by a worker thread (default, returns at once) or on this
        thread. The pipeline runs in a child process (Cancel kills it at once), or in process for
        ``models`` given in memory (Cancel stops between steps)."""
        result = EvaluationResult(request=request)
        process = None if models is not None else self.studyProcess(request)
        runner = SaliencyTrustRunner(self.evaluationSteps(request, result, models=models, process=process),
                                     onProgress=onProgress, onFinished=onFinished, result=result,
                                     onCancel=None if process is None else process.kill)
        runner.studyProcess = process
        if synchronous:
            runner.runSynchronously()
            return runner
        return runner.start()

    def process(self, inputVolumeNode, modelPath=DEFAULT_BUNDLE_DIR, methods: Sequence[str] = STUDY_METHODS,
                models: Optional[Dict[str, Any]] = None, **options) -> EvaluationResult:
        """Batch entry point: evaluate on this thread and return the result (maps, table, plot).

        ``models``: see :meth:`evaluationSteps`; ``options`` are :meth:`makeRequest`'s keyword arguments.
        """
        if models is not None:
            options.setdefault("inMemoryRoles", tuple(models))
        request = self.makeRequest(inputVolumeNode, modelPath, methods, **options)
        return self.startEvaluation(request, synchronous=True, models=models).result

    def scorecard(self, result: EvaluationResult):
        """The study's :class:`~SaliencyTrustLib.criteria.Scorecard` (JSON/CSV/SR-ready), as the
        pipeline made it; its ``params`` also record the image, model, prediction, the cascading
        curves and the different-image baselines."""
        return result.scorecard

    def verdictSummary(self, result: EvaluationResult) -> str:
        """One line: which methods passed every criterion run, which failed, which are undecided."""
        card = result.scorecard
        if card is None or not card.rows:
            return ""
        groups: Dict[str, List[str]] = {"passed all": [], "failed": [], "undecided (n/a)": []}
        for method in card.methods:
            verdict = card.passes_all(method)
            failed = [r.criterion for r in card.rows if r.method == method and r.passed is False]
            if failed:
                groups["failed"].append(f"{method} ({', '.join(failed)})")
            elif verdict:
                groups["passed all"].append(method)
            else:
                groups["undecided (n/a)"].append(method)
        return "; ".join(f"{name}: {', '.join(items)}" for name, items in groups.items() if items)

    def loadSampleData(self, seed: int = 0) -> List[Any]:
        """Add the module's sample study to the scene, generated here (nothing downloaded).

        A synthetic chest radiograph with one lesion (``SaliencyTrustLib.synthetic``, 224 x 224,
        0.8 mm pixels), its lesion as a segmentation on the image's grid, and a second radiograph
        for the different-image baseline.

        Returns:
            ``[chest volume, lesion segmentation, other volume]``.
        """
        from SaliencyTrustLib.image import ImageVolume
        from SaliencyTrustLib.synthetic import make_cohort

        cases = make_cohort(6, seed=seed, kind="cxr")
        positive = next(c for c in cases if c.label == 1)
        other = next(c for c in cases if c is not positive)
        spacing = (0.8, 0.8, 1.0)
        chest = self.createVolumeNode(ImageVolume(positive.image[None], spacing=spacing), "SaliencyTrust chest")
        otherNode = self.createVolumeNode(ImageVolume(other.image[None], spacing=spacing), "SaliencyTrust other chest")
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "SaliencyTrustTmp")
        try:
            ijkToRas = vtk.vtkMatrix4x4()
            chest.GetIJKToRASMatrix(ijkToRas)
            labelmap.SetIJKToRASMatrix(ijkToRas)
            slicer.util.updateVolumeFromArray(labelmap, np.ascontiguousarray(positive.mask[None], dtype=np.uint8))
            lesion = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "SaliencyTrust chest lesion")
            lesion.SetReferenceImageGeometryParameterFromVolumeNode(chest)
            slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, lesion)
        finally:
            self.scene.RemoveNode(labelmap)
        lesion.CreateDefaultDisplayNodes()
        return [chest, lesion, otherNode]

    def sourceDicomFiles(self, volumeNode) -> List[str]:
        """Files of the DICOM instances a volume was loaded from (empty when not from the database)."""
        uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
        database = getattr(slicer, "dicomDatabase", None)
        if not uids or database is None:
            return []
        return [f for f in (database.fileForInstance(uid) for uid in uids) if f]

    def exportResults(self, result: EvaluationResult, directory, toDicomDatabase: bool = False,
                      sourceDicomFiles: Optional[Sequence[str]] = None) -> List[Path]:
        """Write the maps and the scorecard to ``directory``; optionally DICOM objects too.

        Files: ``<image>_saliency_<method>.nii.gz`` per map (the input's geometry),
        ``<image>_scorecard.csv`` and ``.json``. With ``toDicomDatabase``: one DICOM Parametric Map
        per method and a Structured Report of the scorecard under ``dicom/``, referencing the
        source instances (``sourceDicomFiles``, or those the input was loaded from), and imported
        into Slicer's DICOM database when there is one.

        Returns:
            The paths written.
        """
        from SaliencyTrustLib.io.dicom_write import write_scorecard_files
        from SaliencyTrustLib.io.nifti_write import write_nifti

        if not directory or str(directory) in ("", "."):
            raise ValueError(_("Choose an export folder."))
        if not result.maps:
            raise ValueError(_("Nothing to export: no map was computed."))
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        base = "".join(c if c.isalnum() or c in "-_." else "_" for c in
                       result.request.image.metadata.get("name", "image")) or "image"
        written: List[Path] = []
        mapVolumes = {}
        for method, mapArray in result.maps.items():
            mapVolumes[method] = result.request.image.with_array(mapArray, SeriesDescription=f"Saliency {method}")
            path = directory / f"{base}_saliency_{method}.nii.gz"
            write_nifti(mapVolumes[method], path)
            written.append(path)
        scorecard = self.scorecard(result)
        written += list(write_scorecard_files(scorecard, directory / f"{base}_scorecard.json",
                                              directory / f"{base}_scorecard.csv"))
        if toDicomDatabase:
            written += self._exportDicom(result, mapVolumes, scorecard, directory / "dicom", sourceDicomFiles)
        return written

    def _exportDicom(self, result, mapVolumes, scorecard, directory: Path, sourceDicomFiles) -> List[Path]:
        """Parametric Map + SEG (map >= 0.5) per method and the scorecard SR, over the source series."""
        from SaliencyTrustLib.cohort.dicom_results import write_study_objects

        sources = list(sourceDicomFiles or [])
        if not sources:
            inputNode = self.scene.GetNodeByID(result.request.inputNodeID)
            sources = self.sourceDicomFiles(inputNode) if inputNode is not None else []
        if not sources:
            raise ValueError(_("DICOM export needs the input loaded from the DICOM database (DICOM "
                               "module); export files instead, or load the study as DICOM."))
        written = write_study_objects(mapVolumes, sources, directory, scorecard)
        if getattr(slicer, "dicomDatabase", None) is not None:
            from DICOMLib import DICOMUtils

            DICOMUtils.importDicom(str(directory))
        return written


#
# SaliencyTrustTest
#


class SaliencyTrustTest(ScriptedLoadableModuleTest):
    """The whole module inside Slicer: Developer mode > "Reload and Test", or
    ``Slicer --no-main-window --python-code "import SaliencyTrust; SaliencyTrust.SaliencyTrustTest().runTest()"``.

    Data: a synthetic chest radiograph (``SaliencyTrustLib.synthetic``, nothing downloaded) on an
    oblique, anisotropic grid, its lesion as a segmentation and as an ROI box, one other image for
    the baselines, and the repository's MONAI bundle (``MonaiBundle/``) as the model.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SaliencyTrust_Logic()
        self.setUp()
        self.test_SaliencyTrust_SampleData()
        if getattr(slicer, "app", None) is not None and hasattr(slicer.app, "layoutManager"):
            self.setUp()
            self.test_SaliencyTrust_Widget()

    # -- data ---------------------------------------------------------------------------------

    def _addStudy(self):
        """Input volume (oblique, anisotropic), segmentation, ROI, one baseline image."""
        from SaliencyTrustLib.synthetic import make_cohort

        cases = make_cohort(6, seed=0, kind="cxr")
        positive = next(c for c in cases if c.label == 1)
        other = next(c for c in cases if c is not positive)
        angle = 0.3
        ijkToRas = np.array([[0.7 * np.cos(angle), -0.5 * np.sin(angle), 0.0, 20.0],
                             [0.7 * np.sin(angle), 0.5 * np.cos(angle), 0.0, -40.0],
                             [0.0, 0.0, 1.0, 5.0],
                             [0.0, 0.0, 0.0, 1.0]])
        volume = slicer.util.addVolumeFromArray(positive.image[None], ijkToRas, "SaliencyTrustTest chest")
        baseline = slicer.util.addVolumeFromArray(other.image[None], ijkToRas, "SaliencyTrustTest other")
        labels = slicer.util.addVolumeFromArray(positive.mask[None].astype(np.uint8), ijkToRas,
                                                "SaliencyTrustTest labels", "vtkMRMLLabelMapVolumeNode")
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "SaliencyTrustTest lesion")
        slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labels, segmentation)
        slicer.mrmlScene.RemoveNode(labels)
        x, y, w, h = positive.boxes[0][:4]
        cornerA = ijkToRas @ np.array([x, y, 0.0, 1.0])
        cornerB = ijkToRas @ np.array([x + w, y + h, 0.0, 1.0])
        roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "SaliencyTrustTest box")
        roi.SetCenter(*((cornerA + cornerB) / 2)[:3])
        roi.SetSize(*(np.abs(cornerA - cornerB)[:3] + np.array([0.0, 0.0, 1.0])))
        return volume, segmentation, roi, baseline, positive.mask[None]

    # -- tests --------------------------------------------------------------------------------

    def test_SaliencyTrust_Logic(self):
        """Logic only (no GUI): maps on the input grid, scorecard, plot, export."""
        import tempfile

        self.delayDisplay("Saliency Trust: logic")
        logic = SaliencyTrustLogic()
        logic.ensureDependencies(askConfirmation=False)
        volume, segmentation, roi, baseline, mask = self._addStudy()
        methods = ["gradient", "gradcam"]
        result = logic.process(volume, DEFAULT_BUNDLE_DIR, methods, segmentationNode=segmentation,
                               roiNodes=[roi], baselineVolumeNodes=[baseline], criteria=list(STUDY_CRITERIA))
        self.assertTrue((result.request.groundTruth >= mask).all())
        self.assertEqual(set(result.mapNodes), set(methods))
        inputMatrix, mapMatrix = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
        volume.GetIJKToRASMatrix(inputMatrix)
        for method, node in result.mapNodes.items():
            node.GetIJKToRASMatrix(mapMatrix)
            np.testing.assert_allclose(logic._vtkMatrixToArray(mapMatrix), logic._vtkMatrixToArray(inputMatrix))
            values = slicer.util.arrayFromVolume(node)
            self.assertEqual(values.shape, slicer.util.arrayFromVolume(volume).shape)
            self.assertTrue(0.0 <= values.min() and values.max() <= 1.0)
            thresholded = logic.maskFromSegmentation(result.segmentationNodes[method], volume)
            self.assertTrue(np.array_equal(thresholded, values >= MAP_SEGMENTATION_THRESHOLD))
        # the methods and the negative controls, each on every criterion
        self.assertEqual(result.tableNode.GetNumberOfRows(),
                         (len(methods) + len(result.results["controls"])) * len(STUDY_CRITERIA))
        self.assertIsNotNone(result.plotChartNode)
        with tempfile.TemporaryDirectory() as folder:
            written = logic.exportResults(result, folder)
            self.assertEqual(len(written), len(methods) + 2)
            for path in written:
                self.assertTrue(path.exists() and path.stat().st_size > 0, path)
        self.delayDisplay("Saliency Trust: logic passed")

    def test_SaliencyTrust_SampleData(self):
        """The registered sample loads without the network: an image, its lesion, a baseline image."""
        self.delayDisplay("Saliency Trust: sample data")
        chest, lesion, other = loadSampleData()
        logic = SaliencyTrustLogic()
        mask = logic.maskFromSegmentation(lesion, chest)
        self.assertEqual(mask.shape, slicer.util.arrayFromVolume(chest).shape)
        self.assertTrue(mask.any())
        self.assertEqual(slicer.util.arrayFromVolume(other).shape, mask.shape)
        self.delayDisplay("Saliency Trust: sample data passed")

    def test_SaliencyTrust_Widget(self):
        """The GUI path: select inputs in the panel, Apply (threaded), switch maps, export."""
        import tempfile

        self.delayDisplay("Saliency Trust: widget")
        slicer.util.selectModule("SaliencyTrust")
        widget = slicer.modules.saliencytrust.widgetRepresentation().self()
        volume, segmentation, roi, baseline, _mask = self._addStudy()
        parameters = widget._parameterNode
        parameters.inputVolume = volume
        parameters.groundTruthSegmentation = segmentation
        parameters.groundTruthROIs = [roi]
        parameters.baselineVolumes = [baseline]
        parameters.methods = ["gradient", "gradcam"]
        parameters.modelPath = Path(DEFAULT_BUNDLE_DIR)
        self.assertTrue(widget.ui.applyButton.enabled)
        widget.onApplyButton()
        deadline = time.time() + 600
        while widget._runner is not None and time.time() < deadline:
            slicer.app.processEvents()
            time.sleep(0.02)
        self.assertIsNone(widget._runner, "the evaluation did not finish in 10 minutes")
        self.assertIsNotNone(parameters.outputTable)
        self.assertEqual(widget.ui.displayedMethodComboBox.count, 2)
        widget.ui.displayedMethodComboBox.setCurrentText("gradcam")
        composite = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        self.assertEqual(composite.GetForegroundVolumeID(), widget._result.mapNodes["gradcam"].GetID())
        with tempfile.TemporaryDirectory() as folder:
            parameters.exportDirectory = Path(folder)
            widget.onExportButton()
            self.assertTrue(any(Path(folder).glob("*_scorecard.csv")))
        self.delayDisplay("Saliency Trust: widget passed")

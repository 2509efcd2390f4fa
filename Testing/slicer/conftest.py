"""Run SaliencyTrust.py on real MRML (slicer-core) with thin stand-ins for Slicer's Qt-bound parts.

What is real here: ``slicer`` from the slicer-core wheel (vtkMRMLScene, volume/segmentation/markups/
table/plot nodes, the segmentations logic, ``slicer.util`` array helpers, slice logic rendering).
What is stood in, only because it needs the Qt application that cannot exist here: ``qt`` (QTimer
from PySide6's QtCore), ``ctk``, ``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper``
and ``slicer.i18n``. A stand-in is installed only when the real module cannot be imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import unittest
from pathlib import Path

import numpy as np
import pytest
import vtk

REPO = Path(__file__).resolve().parents[2]
MODULE_FILE = REPO / "SaliencyTrust" / "SaliencyTrust.py"


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not available here"
        return False


def _install_standins() -> None:
    import slicer

    if not _importable("qt"):
        from PySide6 import QtCore

        qt = types.ModuleType("qt")
        qt.QTimer = QtCore.QTimer
        qt.QObject = QtCore.QObject
        qt.Qt = QtCore.Qt
        sys.modules["qt"] = qt
    if not _importable("ctk"):
        sys.modules["ctk"] = types.ModuleType("ctk")
    if not _importable("slicer.i18n"):
        i18n = types.ModuleType("slicer.i18n")
        i18n.tr = lambda text: text
        i18n.translate = lambda context, text: text
        sys.modules["slicer.i18n"] = i18n
        slicer.i18n = i18n
    if not _importable("slicer.ScriptedLoadableModule"):
        slm = types.ModuleType("slicer.ScriptedLoadableModule")

        class ScriptedLoadableModule:
            def __init__(self, parent):
                self.parent = parent

        class ScriptedLoadableModuleWidget:
            def __init__(self, parent=None):
                self.parent = parent

        class ScriptedLoadableModuleLogic:
            def __init__(self, parent=None):
                self.moduleName = "SaliencyTrust"

            def getParameterNode(self):
                scene = slicer.mrmlScene
                node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
                if node is None:
                    node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
                    node.SetSingletonTag(self.moduleName)
                    node.SetAttribute("ModuleName", self.moduleName)
                return node

        slm.ScriptedLoadableModule = ScriptedLoadableModule
        slm.ScriptedLoadableModuleWidget = ScriptedLoadableModuleWidget
        slm.ScriptedLoadableModuleLogic = ScriptedLoadableModuleLogic
        class ScriptedLoadableModuleTest(unittest.TestCase):
            def delayDisplay(self, message, msec=1000):
                print(message)

        slm.ScriptedLoadableModuleTest = ScriptedLoadableModuleTest
        sys.modules["slicer.ScriptedLoadableModule"] = slm
        slicer.ScriptedLoadableModule = slm
    if not _importable("slicer.parameterNodeWrapper"):
        pnw = types.ModuleType("slicer.parameterNodeWrapper")

        def parameterNodeWrapper(cls):
            """Typed attribute access over a vtkMRMLScriptedModuleNode (values kept in Python)."""
            defaults = {name: getattr(cls, name, None) for name in cls.__annotations__}

            class Wrapper:
                def __init__(self, node):
                    object.__setattr__(self, "parameterNode", node)
                    for name, value in defaults.items():
                        object.__setattr__(self, name, list(value) if isinstance(value, list) else
                                           ([] if value is None and "list[" in str(cls.__annotations__[name]) else value))

            Wrapper.__name__ = cls.__name__
            Wrapper.__doc__ = cls.__doc__
            Wrapper.__annotations__ = cls.__annotations__
            return Wrapper

        pnw.parameterNodeWrapper = parameterNodeWrapper
        pnw.WithinRange = lambda low, high: ("WithinRange", low, high)
        pnw.Choice = lambda choices: ("Choice", tuple(choices))
        sys.modules["slicer.parameterNodeWrapper"] = pnw
        slicer.parameterNodeWrapper = pnw


def _register_segmentation_converters() -> None:
    """What Slicer's Segmentations module does at application start-up."""
    import slicer

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    for rule in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
                 slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule,
                 slicer.vtkClosedSurfaceToFractionalLabelmapConversionRule,
                 slicer.vtkFractionalLabelmapToClosedSurfaceConversionRule):
        factory.RegisterConverterRule(rule())


# ---------------------------------------------------------------- scene-building helpers

def oblique_ijk_to_ras(spacing=(0.7, 0.9, 2.5), origin=(12.0, -30.0, 7.5), angles=(0.3, -0.2, 0.15)):
    """4x4 IJK->RAS: a rotation about the three axes times an anisotropic spacing, plus origin."""
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = rz @ ry @ rx @ np.diag(spacing)
    matrix[:3, 3] = origin
    return matrix


def to_vtk(matrix):
    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(matrix[r, c]))
    return out


def add_volume(scene, array, ijk_to_ras, name="input", node_class="vtkMRMLScalarVolumeNode"):
    import slicer

    node = scene.AddNewNodeByClass(node_class, name)
    node.SetIJKToRASMatrix(to_vtk(ijk_to_ras))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array))
    node.CreateDefaultDisplayNodes()
    return node


def add_segmentation_from_labels(scene, labels, ijk_to_ras, name="ground truth"):
    """A segmentation node imported from a labelmap with its own geometry (as a SEG/NRRD would give)."""
    import slicer

    labelmap = add_volume(scene, labels.astype(np.uint8), ijk_to_ras, "labels", "vtkMRMLLabelMapVolumeNode")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    scene.RemoveNode(labelmap)
    return segmentation



_REGISTERED = False


def load_module():
    """Import SaliencyTrust.py (once) after the stand-ins are in place."""
    global _REGISTERED
    _install_standins()
    if not _REGISTERED:
        _register_segmentation_converters()
        _REGISTERED = True
    if "SaliencyTrust" in sys.modules and getattr(sys.modules["SaliencyTrust"], "__file__", "") == str(MODULE_FILE):
        return sys.modules["SaliencyTrust"]
    spec = importlib.util.spec_from_file_location("SaliencyTrust", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["SaliencyTrust"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def st():
    """The SaliencyTrust module (Module, Widget, Logic, Test classes)."""
    return load_module()


def new_scene():
    """A fresh MRML scene with the colour tables and the Red/Yellow/Green slice logics, as in Slicer.

    Also made ``slicer.mrmlScene`` (what the module's code uses by default).
    """
    import slicer

    load_module()
    scene = slicer.vtkMRMLScene()
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLScene(scene)
    app = slicer.vtkMRMLApplicationLogic()
    app.SetMRMLScene(scene)
    sliceLogics = []
    for name, orientation in (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal")):
        sliceNode = scene.AddNewNodeByClass("vtkMRMLSliceNode")
        sliceNode.SetName(name)
        sliceNode.SetLayoutName(name)
        sliceNode.SetOrientation(orientation)
        logic = slicer.vtkMRMLSliceLogic()
        logic.SetMRMLScene(scene)
        logic.SetSliceNode(sliceNode)
        sliceLogics.append(logic)
    scene._keepAlive = (colors, app, sliceLogics)  # type: ignore[attr-defined]
    slicer.mrmlScene = scene
    return scene


@pytest.fixture
def scene():
    """See :func:`new_scene`; the previous ``slicer.mrmlScene`` is restored afterwards."""
    import slicer

    previous = getattr(slicer, "mrmlScene", None)
    scene = new_scene()
    yield scene
    slicer.mrmlScene = previous
    scene.Clear(1)


@pytest.fixture
def mk():
    """Helpers that build MRML inputs the way a user's data arrive."""
    return types.SimpleNamespace(oblique_ijk_to_ras=oblique_ijk_to_ras, to_vtk=to_vtk, add_volume=add_volume,
                                 add_segmentation_from_labels=add_segmentation_from_labels)


@pytest.fixture(scope="session")
def qapp():
    """One QApplication for the session (offscreen), shared by the .ui and the runner tests."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])

"""The module's .ui: it loads, and every widget and parameter the code binds exists in it.

Slicer's own widget classes (qMRMLNodeComboBox, ctkCollapsibleButton, ...) are unknown to plain Qt;
they are registered with QUiLoader as stand-ins of the Qt class they extend, so the real file is
loaded by the real loader and the bound names are looked up in the resulting widget tree.
"""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UI_FILE = REPO / "SaliencyTrust" / "Resources" / "UI" / "SaliencyTrust.ui"
MODULE_FILE = REPO / "SaliencyTrust" / "SaliencyTrust.py"

#: Widget class that fits each parameter type (what Slicer's parameterNodeWrapper connectors take).
WIDGET_FOR_TYPE = {
    "bool": {"QCheckBox"},
    "int": {"QSpinBox"},
    "float": {"ctkSliderWidget", "QDoubleSpinBox"},
    "str": {"QComboBox", "QLineEdit"},
    "Path": {"ctkPathLineEdit"},
    "node": {"qMRMLNodeComboBox"},
}


def ui_widgets() -> dict:
    """objectName -> (class, {dynamic property: value}) for every widget in the .ui."""
    widgets = {}
    for element in ET.parse(UI_FILE).getroot().iter("widget"):
        props = {p.get("name"): "".join(p.itertext()).strip() for p in element.findall("property")}
        widgets[element.get("name")] = (element.get("class"), props)
    return widgets


def bound_names() -> set:
    """Names the module reads as ``self.ui.<name>``."""
    names = set()
    for node in ast.walk(ast.parse(MODULE_FILE.read_text())):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "ui" and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"):
            names.add(node.attr)
    return names


def parameter_fields() -> dict:
    """Field name -> annotation source of the parameter node wrapper class."""
    tree = ast.parse(MODULE_FILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "SaliencyTrustParameterNode":
            return {item.target.id: ast.unparse(item.annotation) for item in node.body
                    if isinstance(item, ast.AnnAssign)}
    raise AssertionError("SaliencyTrustParameterNode not found in SaliencyTrust.py")


def kind_of(annotation: str) -> str:
    if annotation.startswith("vtkMRML"):
        return "node"
    for kind in ("bool", "int", "float", "str", "Path"):
        if annotation == kind or annotation.startswith(f"Annotated[{kind},"):
            return kind
    return annotation


def test_every_widget_the_code_binds_is_in_the_ui():
    widgets = ui_widgets()
    used = bound_names()
    assert {"applyButton", "cancelButton", "progressBar", "methodsListWidget"} <= used
    missing = sorted(used - set(widgets))
    assert not missing, f"SaliencyTrust.py binds widgets absent from the .ui: {missing}"


def test_every_parameter_binding_names_a_field_of_the_right_type():
    fields = parameter_fields()
    bindings = {name: (cls, props["SlicerParameterName"]) for name, (cls, props) in ui_widgets().items()
                if "SlicerParameterName" in props}
    assert len(bindings) >= 12
    for widget, (cls, parameter) in bindings.items():
        assert parameter in fields, f"{widget} binds unknown parameter {parameter!r}"
        kind = kind_of(fields[parameter])
        assert cls in WIDGET_FOR_TYPE[kind], f"{widget} ({cls}) cannot hold {parameter}: {fields[parameter]}"
    # Each parameter is bound by at most one widget, and the inputs the user must set all are.
    assert len({p for _c, p in bindings.values()}) == len(bindings)
    assert {"inputVolume", "modelPath", "targetClass", "runLocalization", "runRandomization",
            "runRepeatability", "runReproducibility"} <= {p for _c, p in bindings.values()}
    # A lab's own model (issue 11): factory, its arguments and the preprocessing are all in the panel.
    assert {"modelFactory", "modelKwargs", "preprocessingPreset", "inChannels", "inputSize", "resizeMode",
            "intensity"} <= {p for _c, p in bindings.values()}
    # The criteria beyond the study (issue 13): a checkbox each, the marker region, the
    # label-randomized model and the faithfulness / robustness settings.
    assert {"runShortcut", "runDataRandomization", "runFaithfulness", "runRobustness", "shortcutSegmentation",
            "labelRandomizedModelPath", "faithfulnessFill", "faithfulnessSteps",
            "robustnessShift"} <= {p for _c, p in bindings.values()}


def choice_values(annotation: str):
    """The values of ``Annotated[str, Choice([...])]`` (None for another annotation)."""
    node = ast.parse(annotation, mode="eval").body
    if not (isinstance(node, ast.Subscript) and getattr(node.value, "id", "") == "Annotated"):
        return None
    for item in node.slice.elts[1:]:
        if isinstance(item, ast.Call) and getattr(item.func, "id", "") == "Choice":
            argument = item.args[0]
            if isinstance(argument, ast.Call):  # Choice(list(PREPROCESSING_CHOICES))
                name = argument.args[0].id
                for top in ast.parse(MODULE_FILE.read_text()).body:
                    if isinstance(top, ast.Assign) and any(getattr(t, "id", None) == name for t in top.targets):
                        return list(ast.literal_eval(top.value))
            return list(ast.literal_eval(argument))
    return None


def test_every_choice_parameter_offers_exactly_its_choices_in_the_ui():
    """A combo box bound to a Choice parameter lists the same values in the same order (a value the
    parameter refuses, or a choice the user cannot pick, would be a broken binding)."""
    fields = parameter_fields()
    root = ET.parse(UI_FILE).getroot()
    checked = []
    for element in root.iter("widget"):
        if element.get("class") != "QComboBox":
            continue
        props = {p.get("name"): "".join(p.itertext()).strip() for p in element.findall("property")}
        parameter = props.get("SlicerParameterName")
        if parameter is None:
            continue
        values = choice_values(fields[parameter])
        items = ["".join(i.find("property").itertext()).strip() for i in element.findall("item")]
        assert values is not None, f"{parameter} is bound to a combo box but is not a Choice"
        assert items == values, f"{element.get('name')}: {items} != {values}"
        checked.append(parameter)
    assert {"preprocessingPreset", "resizeMode", "granularity", "device", "faithfulnessFill"} <= set(checked)


def test_spin_boxes_cover_the_range_of_their_parameter():
    fields = parameter_fields()
    for name, (cls, props) in ui_widgets().items():
        if cls != "QSpinBox" or "SlicerParameterName" not in props:
            continue
        annotation = ast.parse(fields[props["SlicerParameterName"]], mode="eval").body
        within = next(i for i in annotation.slice.elts[1:] if getattr(i.func, "id", "") == "WithinRange")
        low, high = (eval(compile(ast.Expression(a), "<WithinRange>", "eval"), {}) for a in within.args)  # 2**31 - 1
        assert int(props.get("minimum", 0)) == low and int(props.get("maximum", 99)) == high, name


def test_mrml_widgets_receive_the_scene():
    root = ET.parse(UI_FILE).getroot()
    receivers = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
    mrml = {name for name, (cls, _p) in ui_widgets().items()
            if cls.startswith("qMRML") and cls != "qMRMLWidget"}
    assert mrml and mrml <= receivers


def test_ui_loads_with_qt_and_holds_the_bound_widgets(qapp):
    from PySide6 import QtCore, QtWidgets
    from PySide6.QtUiTools import QUiLoader

    loader = QUiLoader()
    root = ET.parse(UI_FILE).getroot()
    bases = {"QWidget": QtWidgets.QWidget, "QTableView": QtWidgets.QTableView,
             "QComboBox": QtWidgets.QComboBox}
    declared = {c.findtext("class"): c.findtext("extends") for c in root.iter("customwidget")}
    standins = {}
    for name in sorted(declared, key=lambda n: declared[n] in declared):  # bases first
        base = standins.get(declared[name]) or bases.get(declared[name], QtWidgets.QWidget)
        standins[name] = type(name, (base,), {})
        loader.registerCustomWidget(standins[name])
    with open(UI_FILE, "rb") as stream:
        device = QtCore.QBuffer()
        device.setData(stream.read())
        device.open(QtCore.QIODevice.ReadOnly)
        widget = loader.load(device)
    assert widget is not None, loader.errorString()
    assert type(widget).__name__ == "qMRMLWidget"
    for name, (cls, _props) in ui_widgets().items():
        if name == widget.objectName():
            continue
        child = widget.findChild(QtCore.QObject, name)
        assert child is not None, f"{name} ({cls}) missing after loading"
        assert type(child).__name__ == cls or child.metaObject().className() == cls
    for name in bound_names():
        assert widget.findChild(QtCore.QObject, name) is not None


def test_the_panels_own_model_fields_reach_the_request(st, scene, mk, tmp_path):
    """What the panel's "Your own model" fields hold is what the Logic's request carries."""
    import json

    import numpy as np
    from SaliencyTrustLib.model_spec import bundle_preprocessing
    from SaliencyTrustLib.preprocessing import Preprocessing

    volume = mk.add_volume(scene, np.zeros((1, 32, 32), np.float32), np.eye(4), name="chest")
    weights, factory = tmp_path / "labnet.pt", tmp_path / "labnet.py"
    weights.write_bytes(b"weights")
    factory.write_text("def build(num_classes=2):\n    raise NotImplementedError\n")
    logic = st.SaliencyTrustLogic(scene)
    p = logic.getParameterNode()
    assert (p.modelFactory, p.modelKwargs, p.preprocessingPreset, p.inChannels, p.inputSize, p.resizeMode,
            p.intensity) == ("", "", "from bundle metadata", 0, 0, "preset", "")
    p.inputVolume = volume
    p.modelPath = weights
    p.methods = ["gradient"]
    p.runLocalization = False
    p.modelFactory = f"  {factory}:build "
    p.modelKwargs = json.dumps({"num_classes": 2})
    p.preprocessingPreset = "study"
    p.inputSize = 64
    p.resizeMode = "pad"
    p.intensity = "imagenet"
    request = logic.requestFromParameterNode(p)
    assert request.modelPath == weights and request.modelFactory == f"{factory.resolve()}:build"
    assert request.modelKwargs == {"num_classes": 2}
    assert request.preprocessing == Preprocessing(in_channels=3, input_size=64, resize="pad", intensity="imagenet")

    # The defaults leave the bundle's own description in charge; an override starts from it.
    p.modelFactory, p.modelKwargs, p.preprocessingPreset = "", "", "from bundle metadata"
    p.inputSize, p.resizeMode, p.intensity = 0, "preset", ""
    request = logic.requestFromParameterNode(p)
    assert (request.modelFactory, request.modelKwargs, request.preprocessing) == (None, None, None)
    bundle = Path(st.DEFAULT_BUNDLE_DIR)
    from_bundle = logic.preprocessingFromChoices("from bundle metadata", bundle, inputSize=96)
    assert bundle_preprocessing(bundle), "the repository's bundle declares its network_data_format"
    assert from_bundle == Preprocessing(**{**bundle_preprocessing(bundle), "input_size": 96})
    assert logic.preprocessingFromChoices("study", bundle, inChannels=1) == Preprocessing.preset("study", in_channels=1)

    # Wrong values are one clear error before anything runs.
    p.modelKwargs = "{num_classes: 2}"
    with pytest.raises(ValueError, match="not JSON"):
        logic.requestFromParameterNode(p)
    p.modelKwargs, p.intensity = "", "bright"
    with pytest.raises(ValueError, match="intensity"):
        logic.requestFromParameterNode(p)


def test_the_criteria_beyond_the_study_are_one_group_off_by_default():
    """Their checkboxes, the marker region and the label-randomized model sit in the "Beyond the
    study" section, apart from the study's four criteria; none is ticked by the .ui."""
    root = ET.parse(UI_FILE).getroot()
    group = next(w for w in root.iter("widget") if w.get("name") == "beyondCollapsibleButton")
    assert "".join(next(p for p in group.findall("property") if p.get("name") == "text").itertext()).strip() \
        == "Beyond the study"
    inside = {"".join(p.itertext()).strip() for w in group.iter("widget") for p in w.findall("property")
              if p.get("name") == "SlicerParameterName"}
    assert {"runShortcut", "runDataRandomization", "runFaithfulness", "runRobustness", "shortcutSegmentation",
            "labelRandomizedModelPath"} <= inside
    assert not inside & {"runLocalization", "runRandomization", "runRepeatability", "runReproducibility"}
    assert not [w.get("name") for w in group.iter("widget") if w.get("class") == "QCheckBox"
                and any(p.get("name") == "checked" for p in w.findall("property"))]

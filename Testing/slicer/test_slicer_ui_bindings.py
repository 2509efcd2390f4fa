"""The module's .ui: it loads, and every widget and parameter the code binds exists in it.

Slicer's own widget classes (qMRMLNodeComboBox, ctkCollapsibleButton, ...) are unknown to plain Qt;
they are registered with QUiLoader as stand-ins of the Qt class they extend, so the real file is
loaded by the real loader and the bound names are looked up in the resulting widget tree.
"""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

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

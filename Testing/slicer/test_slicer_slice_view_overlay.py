"""The map overlay as Slicer's slice view draws it (vtkMRMLSliceLogic, headless).

The input has a bright square and the map a blob on the same voxels; in the rendered view the
overlay's coloured pixels must sit on the square, and map values below the display threshold
must leave the input visible.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("slice_rendering", Path(__file__).with_name("slice_rendering.py"))
slice_rendering = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slice_rendering)


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_overlay_lies_on_the_input_and_low_values_are_transparent(st, scene, mk):
    shape = (1, 80, 120)
    image = np.full(shape, 0.2, np.float32)
    image[0, 20:45, 60:95] = 1.0  # the bright square
    matrix = mk.oblique_ijk_to_ras(spacing=(0.8, 0.6, 1.0), angles=(0.0, 0.0, 0.5))
    volume = mk.add_volume(scene, image, matrix)
    display = volume.GetDisplayNode()
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    saliency = np.zeros(shape, np.float32)
    saliency[0, 20:45, 60:95] = 0.8
    saliency[0, 60:70, 10:30] = 0.05  # below the display threshold: must stay invisible
    logic = st.SaliencyTrustLogic(scene)
    map_node = logic.createMapVolumeNode(saliency, volume, "blob")
    request = st.EvaluationRequest(image=None, groundTruth=None, baselineImages=[], modelPath=Path("."),
                                   methods=["blob"], targetClass=None, criteria=[], inputNodeID=volume.GetID())
    result = st.EvaluationResult(request=request, mapNodes={"blob": map_node})
    red = slice_rendering.slice_logic(scene, "Red")

    logic.showMap(result, "blob", opacity=0.0)
    plain = slice_rendering.render_slice_view(red, (300, 300)).astype(int)
    logic.showMap(result, "blob", opacity=0.6)
    overlay = slice_rendering.render_slice_view(red, (300, 300), fit=False).astype(int)

    changed = np.abs(overlay[..., :3] - plain[..., :3]).max(axis=2) > 10
    square = plain[..., 0] > 200  # the bright square as drawn in the view
    assert square.sum() > 500, "the square must be visible for the test to mean anything"
    assert iou(changed, square) > 0.9, iou(changed, square)
    # The overlay is the colour table's red-orange for 0.8, not grey.
    coloured = overlay[changed][:, :3]
    assert np.mean(coloured[:, 0] - coloured[:, 2]) > 60

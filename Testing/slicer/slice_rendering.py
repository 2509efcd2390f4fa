"""Render Slicer slice views headless, with Slicer's own slice pipeline (vtkMRMLSliceLogic).

The slice logic reslices the background, foreground and label layers of a slice view through
each volume's IJK->RAS and blends them with the display nodes' colour maps, window/level,
thresholds and opacities - the same image a slice view shows, without Qt or an OpenGL window.
"""

from __future__ import annotations

import numpy as np


def slice_logic(scene, layout_name: str = "Red"):
    """The slice logic of a view created by the test scene (conftest ``scene`` fixture)."""
    for logic in scene._keepAlive[2]:  # type: ignore[attr-defined]
        if logic.GetSliceNode().GetLayoutName() == layout_name:
            return logic
    raise KeyError(layout_name)


def render_slice_view(logic, size=(512, 512), fit: bool = True) -> np.ndarray:
    """The blended RGBA image ``(rows, columns, 4)`` uint8 of a slice view, top row first."""
    from vtk.util.numpy_support import vtk_to_numpy

    slice_node = logic.GetSliceNode()
    slice_node.SetDimensions(size[0], size[1], 1)
    if fit:
        logic.FitSliceToAll()
    producer = logic.GetImageDataConnection().GetProducer()
    producer.Update()
    image = producer.GetOutputDataObject(0)
    columns, rows, _ = image.GetDimensions()
    pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(rows, columns, -1)
    return np.ascontiguousarray(pixels[::-1])

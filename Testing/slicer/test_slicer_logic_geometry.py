"""The Logic's MRML <-> array conversions on real MRML nodes (slicer-core).

Each test uses a volume whose IJK->RAS is oblique and anisotropic, so a swapped axis, a missed
RAS/LPS flip or a transposed array shows as a wrong number.
"""

from __future__ import annotations

import numpy as np
import vtk


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


def test_image_volume_has_node_geometry_in_lps(st, scene):
    rng = np.random.default_rng(0)
    array = rng.random((5, 12, 17)).astype(np.float32)
    matrix = oblique_ijk_to_ras()
    node = add_volume(scene, array, matrix)
    volume = st.SaliencyTrustLogic(scene).imageVolumeFromNode(node)
    np.testing.assert_array_equal(volume.array, array)
    np.testing.assert_allclose(volume.ijk_to_ras(), matrix, atol=1e-9)
    np.testing.assert_allclose(volume.spacing, (0.7, 0.9, 2.5), atol=1e-9)
    # LPS origin: x and y of the RAS origin negated.
    np.testing.assert_allclose(volume.origin, (-12.0, 30.0, 7.5), atol=1e-9)
    volume.array[0, 0, 0] = -1  # a copy: the node's voxels stay as they were
    import slicer

    assert slicer.util.arrayFromVolume(node)[0, 0, 0] == array[0, 0, 0]


def test_image_volume_includes_linear_parent_transform(st, scene):
    array = np.zeros((2, 3, 4), np.float32)
    matrix = oblique_ijk_to_ras()
    node = add_volume(scene, array, matrix)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = (5.0, 0.0, -2.0)
    transform.SetMatrixTransformToParent(to_vtk(shift))
    node.SetAndObserveTransformNodeID(transform.GetID())
    volume = st.SaliencyTrustLogic(scene).imageVolumeFromNode(node)
    np.testing.assert_allclose(volume.ijk_to_ras(), shift @ matrix, atol=1e-9)


def test_segmentation_is_exported_on_the_volume_grid(st, scene):
    """Ground truth stored on another grid (I axis flipped) comes back voxel-exact on the input grid."""
    shape = (4, 10, 14)
    matrix = oblique_ijk_to_ras()
    volume_node = add_volume(scene, np.zeros(shape, np.float32), matrix)
    mask = np.zeros(shape, bool)
    mask[1:3, 2:6, 3:9] = True
    mask[3, 7, 12] = True
    # The same voxels described with the I axis reversed: index i' = nI-1-i.
    flipped = np.eye(4)
    flipped[0, 0] = -1
    flipped[0, 3] = shape[2] - 1
    segmentation = add_segmentation_from_labels(scene, mask[:, :, ::-1], matrix @ flipped)
    exported = st.SaliencyTrustLogic(scene).maskFromSegmentation(segmentation, volume_node)
    assert exported.dtype == bool and exported.shape == shape
    np.testing.assert_array_equal(exported, mask)
    assert scene.GetNodesByClass("vtkMRMLLabelMapVolumeNode").GetNumberOfItems() == 0  # temp removed


def _voxel_centres_ras(matrix, shape):
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    ijk = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
    return (matrix @ ijk)[:3].T


def test_roi_mask_agrees_with_slicer_is_point_in_roi(st, scene):
    """A rotated ROI box: our vectorized mask equals Slicer's own IsPointInROIWorld at each voxel centre."""
    shape = (6, 16, 20)
    matrix = oblique_ijk_to_ras()
    volume_node = add_volume(scene, np.zeros(shape, np.float32), matrix)
    centre = (matrix @ np.array([9.0, 7.0, 2.5, 1.0]))[:3]
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "box")
    roi.SetCenter(*centre)
    roi.SetSize(6.0, 4.0, 7.0)
    rotation = vtk.vtkTransform()
    rotation.RotateZ(25)
    axes = vtk.vtkMatrix4x4()
    rotation.GetMatrix(axes)
    for r in range(3):
        axes.SetElement(r, 3, centre[r])
    roi.SetAndObserveObjectToNodeMatrix(axes)
    mask = st.SaliencyTrustLogic(scene).maskFromROIs([roi], volume_node)
    expected = np.array([roi.IsPointInROIWorld(p.tolist()) for p in _voxel_centres_ras(matrix, shape)])
    expected = expected.reshape(shape)
    assert expected.sum() > 10, "the box must cover some voxels for the test to mean anything"
    np.testing.assert_array_equal(mask, expected)


def test_roi_on_a_radiograph_covers_its_plane_whatever_its_depth(st, scene):
    """A flat box drawn on a single-slice image (depth 0) still marks the pixels inside it."""
    shape = (1, 20, 30)
    matrix = oblique_ijk_to_ras(spacing=(0.5, 0.8, 1.0), angles=(0.0, 0.0, 0.4))
    volume_node = add_volume(scene, np.zeros(shape, np.float32), matrix)
    centre = (matrix @ np.array([10.0, 8.0, 0.0, 1.0]))[:3]
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "box")
    roi.SetCenter(*centre)
    roi.SetSize(4.0, 3.0, 0.0)
    mask = st.SaliencyTrustLogic(scene).maskFromROIs([roi], volume_node)
    # Expected from Slicer itself once the box is given depth.
    roi.SetSize(4.0, 3.0, 10.0)
    expected = np.array([roi.IsPointInROIWorld(p.tolist()) for p in _voxel_centres_ras(matrix, shape)]).reshape(shape)
    assert expected.sum() > 4
    np.testing.assert_array_equal(mask, expected)


def test_map_volume_node_has_input_geometry(st, scene):
    import slicer

    shape = (3, 8, 9)
    matrix = oblique_ijk_to_ras()
    volume_node = add_volume(scene, np.zeros(shape, np.float32), matrix)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    volume_node.SetAndObserveTransformNodeID(transform.GetID())
    maps = np.random.default_rng(1).random(shape).astype(np.float32)
    node = st.SaliencyTrustLogic(scene).createMapVolumeNode(maps, volume_node, "gradcam")
    got = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(got)
    np.testing.assert_allclose(st.SaliencyTrustLogic._vtkMatrixToArray(got), matrix, atol=1e-9)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), maps)
    assert node.GetTransformNodeID() == transform.GetID()
    display = node.GetDisplayNode()
    assert display.GetColorNodeID() in st.MAP_COLOR_NODE_IDS
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == (0.0, 1.0)

"""The Logic's MRML <-> array conversions on real MRML nodes (slicer-core).

Each test uses a volume whose IJK->RAS is oblique and anisotropic, so a swapped axis, a missed
RAS/LPS flip or a transposed array shows as a wrong number.
"""

from __future__ import annotations

import numpy as np
import vtk


def test_image_volume_has_node_geometry_in_lps(st, scene, mk):
    rng = np.random.default_rng(0)
    array = rng.random((5, 12, 17)).astype(np.float32)
    matrix = mk.oblique_ijk_to_ras()
    node = mk.add_volume(scene, array, matrix)
    volume = st.SaliencyTrustLogic(scene).imageVolumeFromNode(node)
    np.testing.assert_array_equal(volume.array, array)
    np.testing.assert_allclose(volume.ijk_to_ras(), matrix, atol=1e-9)
    np.testing.assert_allclose(volume.spacing, (0.7, 0.9, 2.5), atol=1e-9)
    # LPS origin: x and y of the RAS origin negated.
    np.testing.assert_allclose(volume.origin, (-12.0, 30.0, 7.5), atol=1e-9)
    volume.array[0, 0, 0] = -1  # a copy: the node's voxels stay as they were
    import slicer

    assert slicer.util.arrayFromVolume(node)[0, 0, 0] == array[0, 0, 0]


def test_image_volume_includes_linear_parent_transform(st, scene, mk):
    array = np.zeros((2, 3, 4), np.float32)
    matrix = mk.oblique_ijk_to_ras()
    node = mk.add_volume(scene, array, matrix)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = (5.0, 0.0, -2.0)
    transform.SetMatrixTransformToParent(mk.to_vtk(shift))
    node.SetAndObserveTransformNodeID(transform.GetID())
    volume = st.SaliencyTrustLogic(scene).imageVolumeFromNode(node)
    np.testing.assert_allclose(volume.ijk_to_ras(), shift @ matrix, atol=1e-9)


def test_segmentation_is_exported_on_the_volume_grid(st, scene, mk):
    """Ground truth stored on another grid (I axis flipped) comes back voxel-exact on the input grid."""
    shape = (4, 10, 14)
    matrix = mk.oblique_ijk_to_ras()
    volume_node = mk.add_volume(scene, np.zeros(shape, np.float32), matrix)
    mask = np.zeros(shape, bool)
    mask[1:3, 2:6, 3:9] = True
    mask[3, 7, 12] = True
    # The same voxels described with the I axis reversed: index i' = nI-1-i.
    flipped = np.eye(4)
    flipped[0, 0] = -1
    flipped[0, 3] = shape[2] - 1
    segmentation = mk.add_segmentation_from_labels(scene, mask[:, :, ::-1], matrix @ flipped)
    exported = st.SaliencyTrustLogic(scene).maskFromSegmentation(segmentation, volume_node)
    assert exported.dtype == bool and exported.shape == shape
    np.testing.assert_array_equal(exported, mask)
    assert scene.GetNodesByClass("vtkMRMLLabelMapVolumeNode").GetNumberOfItems() == 0  # temp removed


def _voxel_centres_ras(matrix, shape):
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    ijk = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
    return (matrix @ ijk)[:3].T


def test_roi_mask_agrees_with_slicer_is_point_in_roi(st, scene, mk):
    """A rotated ROI box: our vectorized mask equals Slicer's own IsPointInROIWorld at each voxel centre."""
    shape = (6, 16, 20)
    matrix = mk.oblique_ijk_to_ras()
    volume_node = mk.add_volume(scene, np.zeros(shape, np.float32), matrix)
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


def test_roi_on_a_radiograph_covers_its_plane_whatever_its_depth(st, scene, mk):
    """A flat box drawn on a single-slice image (depth 0) still marks the pixels inside it."""
    shape = (1, 20, 30)
    matrix = mk.oblique_ijk_to_ras(spacing=(0.5, 0.8, 1.0), angles=(0.0, 0.0, 0.4))
    volume_node = mk.add_volume(scene, np.zeros(shape, np.float32), matrix)
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


def test_map_volume_node_has_input_geometry(st, scene, mk):
    import slicer

    shape = (3, 8, 9)
    matrix = mk.oblique_ijk_to_ras()
    volume_node = mk.add_volume(scene, np.zeros(shape, np.float32), matrix)
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
    assert display.GetColorNode().GetName() == st.MAP_COLOR_TABLE_NAME
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == (0.0, 1.0)

"""Sample data registered with Slicer's SampleData module, and each map also as a segmentation.

Real: the MRML nodes (slicer-core), the segmentation logic that imports and exports labelmaps.
Stood in: ``slicer.app`` (its start-up signal) and the SampleData module (a Qt module), which only
record what they are given.
"""

from __future__ import annotations

import socket
import sys
import types
from pathlib import Path

import numpy as np
import pytest


def test_module_registers_its_sample_once_slicer_has_started(st, monkeypatch):
    import slicer

    connected = []
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(connect=lambda signal, slot: connected.append((signal, slot))),
                        raising=False)
    parent = types.SimpleNamespace()
    st.SaliencyTrust(parent)
    assert connected == [("startupCompleted()", st.registerSampleData)]
    assert parent.categories == ["Quantification"] and parent.contributors == list(st.CONTRIBUTORS)
    assert st.HOMEPAGE_URL in parent.helpText


@pytest.fixture
def sample_data_module(monkeypatch):
    registered = []

    class SampleDataLogic:
        @staticmethod
        def registerCustomSampleDataSource(**kwargs):
            registered.append(kwargs)

    monkeypatch.setitem(sys.modules, "SampleData", types.SimpleNamespace(SampleDataLogic=SampleDataLogic))
    return registered


def test_sample_is_a_generated_chest_radiograph_with_its_lesion_and_a_baseline(st, scene, sample_data_module,
                                                                                 monkeypatch):
    import slicer

    st.registerSampleData()
    source, = sample_data_module
    assert source["category"] == "Saliency Trust" and source["sampleName"] == st.SAMPLE_DATA_NAME
    assert source["uris"] == [] and source["fileNames"] == []  # nothing to download
    assert Path(source["thumbnailFileName"]).is_file()

    def no_network(*args, **kwargs):
        raise AssertionError("the sample data must not use the network")

    monkeypatch.setattr(socket, "socket", no_network)
    chest, lesion, other = source["customDownloader"](None)
    assert chest.GetName() == "SaliencyTrust chest" and other.GetName() == "SaliencyTrust other chest"
    assert chest.GetSpacing() == pytest.approx((0.8, 0.8, 1.0))
    image = slicer.util.arrayFromVolume(chest)
    assert image.shape == (1, 224, 224) and 0.0 <= image.min() and image.max() <= 1.0
    assert not np.array_equal(image, slicer.util.arrayFromVolume(other))
    # The lesion segmentation lies on the image's grid, exactly where the generator put the lesion.
    from SaliencyTrustLib.synthetic import make_cohort

    positive = next(c for c in make_cohort(6, seed=0, kind="cxr") if c.label == 1)
    np.testing.assert_array_equal(image, positive.image[None])
    logic = st.SaliencyTrustLogic(scene)
    np.testing.assert_array_equal(logic.maskFromSegmentation(lesion, chest), positive.mask[None])
    assert positive.mask.sum() > 0


def test_thresholded_map_becomes_a_segmentation_on_the_input_grid(st, scene, mk):
    """map >= 0.5 as a segmentation node whose voxels, exported back on the (oblique) input grid by
    Slicer's own logic, are exactly the thresholded map."""
    matrix = mk.oblique_ijk_to_ras(spacing=(0.7, 0.9, 1.0), angles=(0.0, 0.0, 0.4))
    volume = mk.add_volume(scene, np.zeros((1, 40, 50), np.float32), matrix, name="chest")
    yy, xx = np.mgrid[0:40, 0:50]
    saliency = np.exp(-(((yy - 12) / 6.0) ** 2 + ((xx - 30) / 9.0) ** 2))[None].astype(np.float32)
    logic = st.SaliencyTrustLogic(scene)
    node = logic.createMapSegmentationNode(saliency, volume, "gradcam")
    assert node.GetAttribute(st.OUTPUT_ATTRIBUTE) == "segmentation"
    assert node.GetAttribute("SaliencyTrust.Method") == "gradcam"
    segment = node.GetSegmentation().GetNthSegment(0)
    assert node.GetSegmentation().GetNumberOfSegments() == 1 and segment.GetName() == "gradcam >= 0.5"
    expected = saliency >= 0.5
    assert 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(logic.maskFromSegmentation(node, volume), expected)
    # A map below the threshold everywhere gives an empty, still named, segment.
    empty = logic.createMapSegmentationNode(saliency * 0.4, volume, "gradient")
    assert empty.GetSegmentation().GetNumberOfSegments() == 1
    assert empty.GetSegmentation().GetNthSegment(0).GetName() == "gradient >= 0.5"

"""Render the README's screenshot: a synthetic chest radiograph loaded as DICOM, the module run on it
with the bundle's model, and Slicer's slice view (headless slice logic) showing each map overlaid
with the ground-truth outline.

    python Testing/slicer/make_screenshot.py [--out Resources/Screenshots/SaliencyTrust-slice-views.png]

Everything comes from the real pipeline: ``saliency-trust synth`` DICOM -> ``SaliencyTrustLogic``
(the module's Logic, on slicer-core MRML) -> ``vtkMRMLSliceLogic`` reslice + blend.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import conftest  # noqa: E402
import slice_rendering  # noqa: E402

METHODS = ("gradcam", "gradcam_pp", "integrated_gradients")


def build_scene(work: Path, case_index: int = 1):
    """Scene with the input (from DICOM), its ground-truth segmentation, and the module's Logic."""
    from SaliencyTrustLib.io import read_image
    from SaliencyTrustLib.io.synth import write_synthetic_cohort

    st = conftest.load_module()
    scene = conftest.new_scene()
    write_synthetic_cohort(work / "cohort", n=8, seed=0, kind="cxr")
    labels = dict(line.split(",") for line in (work / "cohort" / "labels.csv").read_text().split()[1:])
    case_id = [c for c, label in labels.items() if label == "1"][case_index]
    logic = st.SaliencyTrustLogic(scene)
    volume_node = logic.createVolumeNode(read_image(work / "cohort" / "dicom" / case_id), name="chest CR")
    mask = read_image(work / "cohort" / "masks" / f"{case_id}.nii.gz")
    segmentation = conftest.add_segmentation_from_labels(scene, mask.array > 0, mask.ijk_to_ras(), "lesion")
    display = volume_node.GetDisplayNode()
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, float(slicer_array(volume_node).max()))
    return st, scene, logic, volume_node, segmentation


def slicer_array(node):
    import slicer

    return slicer.util.arrayFromVolume(node)


def outline_label_layer(scene, logic, volume_node, segmentation):
    """Show the ground truth as an outlined label layer in every slice view."""
    import slicer

    labels = logic.maskFromSegmentation(segmentation, volume_node).astype(np.uint8)
    label_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "lesion label")
    label_node.CopyOrientation(volume_node)
    slicer.util.updateVolumeFromArray(label_node, labels)
    label_node.CreateDefaultDisplayNodes()
    composites = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    for index in range(composites.GetNumberOfItems()):
        composites.GetItemAsObject(index).SetLabelVolumeID(label_node.GetID())
        composites.GetItemAsObject(index).SetLabelOpacity(1.0)
    slices = scene.GetNodesByClass("vtkMRMLSliceNode")
    for index in range(slices.GetNumberOfItems()):
        slices.GetItemAsObject(index).SetUseLabelOutline(True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "Resources" / "Screenshots" / "SaliencyTrust-slice-views.png")
    parser.add_argument("--bundle", type=Path, default=REPO / "MonaiBundle")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with tempfile.TemporaryDirectory() as tmp:
        st, scene, logic, volume_node, segmentation = build_scene(Path(tmp))
        result = logic.process(volume_node, args.bundle, list(METHODS), segmentationNode=segmentation,
                               criteria=["localization"])
        outline_label_layer(scene, logic, volume_node, segmentation)
        red = slice_rendering.slice_logic(scene, "Red")
        panels = []
        for method in METHODS:
            logic.showMap(result, method, opacity=0.45)
            row = result.tableNode.GetTable()
            index = [row.GetValue(r, 0).ToString() for r in range(row.GetNumberOfRows())].index(method)
            value = row.GetColumnByName("value").GetValue(index)
            baseline = row.GetColumnByName("baseline").GetValue(index)
            panels.append((method, value, baseline, slice_rendering.render_slice_view(red, (420, 420))))

        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.7), dpi=100)
        for ax, (method, value, baseline, image) in zip(axes, panels):
            ax.imshow(image[..., :3])
            ax.set_title(f"{method}\nAUPRC {value:.2f} (randomized model {baseline:.2f})", fontsize=10)
            ax.axis("off")
        fig.suptitle(f"SaliencyTrust maps in Slicer's slice view (ground truth outlined); "
                     f"{result.predictionText()}", fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 0.94))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out)
        plt.close(fig)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

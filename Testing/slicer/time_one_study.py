"""Time each step of the Slicer module's evaluation of one study (what its progress bar shows).

    OMP_NUM_THREADS=2 python Testing/slicer/time_one_study.py [methods, comma-separated]

A synthetic positive radiograph (224 x 224, 1.6 mm) with its lesion segmentation and two other
images as baseline images, the repository's MONAI bundle, all four criteria; runs the Logic's
``evaluationSteps`` on slicer-core MRML and prints elapsed and per-step seconds as they finish.
"""

import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import conftest  # noqa: E402


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    st = conftest.load_module()
    methods = argv[0].split(",") if argv else list(st.STUDY_METHODS)
    scene = conftest.new_scene()
    from SaliencyTrustLib.synthetic import make_cohort

    cases = make_cohort(8, seed=0, kind="cxr")
    positive = next(c for c in cases if c.label == 1)
    matrix = np.diag([1.6, 1.6, 1.0, 1.0])
    volume = conftest.add_volume(scene, positive.image[None], matrix, "chest")
    segmentation = conftest.add_segmentation_from_labels(scene, positive.mask[None], matrix)
    others = [conftest.add_volume(scene, c.image[None], matrix, f"other {i}")
              for i, c in enumerate(c for c in cases if c is not positive)][:2]
    logic = st.SaliencyTrustLogic(scene)
    request = logic.makeRequest(volume, conftest.REPO / "MonaiBundle", methods,
                                segmentationNode=segmentation, baselineVolumeNodes=others)
    result = st.EvaluationResult(request=request)
    start = last = time.time()
    for step in logic.evaluationSteps(request, result):
        if step.apply is not None:
            step.apply()
        now = time.time()
        print(f"{now - start:8.1f} s {now - last:7.1f} s  {step.message}", flush=True)
        last = now
    print(result.status)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The Logic's long work runs in a child process (``python -m SaliencyTrustLib run-request``) that
Cancel kills at once, and a lab's own model (weights + a factory ``.py`` file) goes through it.

Real here: the MRML scene (slicer-core), the request file and its NIfTI inputs, the child process and
its pipeline, the kill. The child is started through a shell launcher, as Slicer's ``PythonSlicer``
starts the real interpreter as its own child, so killing only the launcher would leave the
computation running.
"""

from __future__ import annotations

import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

#: A lab's own classifier, as a user's factory file: 3 input channels, BatchNorm, in-place ReLU.
#: While the file ``$LAB_CNN_GATE`` exists each forward prints a line and sleeps ``$LAB_CNN_SLEEP`` s.
LAB_CNN_SOURCE = textwrap.dedent('''
    import os
    import sys
    import time

    import torch
    from torch import nn


    class LabCNN(nn.Module):
        def __init__(self, num_classes=2, width=8):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.Conv2d(width, 2 * width, 3, padding=1, stride=2), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
                nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(2 * width, num_classes)

        def forward(self, x):
            gate = os.environ.get("LAB_CNN_GATE")
            if gate and os.path.exists(gate):
                print("LAB-CNN SLOW FORWARD", flush=True)
                time.sleep(float(os.environ.get("LAB_CNN_SLEEP", "60")))
            return self.classifier(self.pool(self.features(x)).flatten(1))


    def build(num_classes=2, width=8):
        return LabCNN(num_classes=num_classes, width=width)
''')


def write_lab_model(folder: Path, seed: int = 0):
    """The factory file and the weights (a state dict, BatchNorm statistics set) of a LabCNN."""
    folder.mkdir(parents=True, exist_ok=True)
    factory = folder / "labnet.py"
    factory.write_text(LAB_CNN_SOURCE)
    namespace: dict = {}
    exec(compile(LAB_CNN_SOURCE, str(factory), "exec"), namespace)
    torch.manual_seed(seed)
    model = namespace["build"](num_classes=2, width=8)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    weights = folder / "labnet.pt"
    torch.save(model.state_dict(), weights)
    return factory, weights, model.eval()


def chest_scene(scene, mk):
    """A positive synthetic radiograph (oblique grid) and its lesion as a segmentation."""
    from SaliencyTrustLib.synthetic import make_cohort

    positive = next(c for c in make_cohort(6, seed=0, kind="cxr") if c.label == 1)
    matrix = mk.oblique_ijk_to_ras(spacing=(0.8, 0.6, 1.0), angles=(0.0, 0.0, 0.25))
    volume = mk.add_volume(scene, positive.image[None].astype(np.float32), matrix, name="chest")
    segmentation = mk.add_segmentation_from_labels(scene, positive.mask[None], matrix)
    return volume, segmentation, positive.mask[None]


def launcher(folder: Path) -> Path:
    """A stand-in of PythonSlicer: a shell that runs the interpreter as its child (no exec)."""
    path = folder / "PythonLauncher"
    path.write_text(f'#!/bin/sh\n"{sys.executable}" "$@"\nexit $?\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def live_processes_in_group(pgid: int) -> list:
    """PIDs of processes of group ``pgid`` that are not zombies (Linux /proc)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


def test_request_file_carries_the_study_the_pipeline_is_given(st, scene, mk, tmp_path):
    """What the child reads back is what the in-process pipeline would get: the same image (voxels
    and geometry), mask, baseline images, model specs and settings."""
    from SaliencyTrustLib.cohort.cli_request import read_request, write_request
    from SaliencyTrustLib.io import read_ground_truth, read_image

    volume, segmentation, mask = chest_scene(scene, mk)
    factory, weights, _model = write_lab_model(tmp_path / "lab")
    logic = st.SaliencyTrustLogic(scene)
    from SaliencyTrustLib.preprocessing import Preprocessing

    request = logic.makeRequest(volume, weights, ["gradient", "gradcam"], segmentationNode=segmentation,
                                baselineVolumeNodes=[mk.add_volume(scene, np.zeros((1, 20, 30), np.int16),
                                                                   np.eye(4), name="other")],
                                criteria=["localization", "randomization"], modelFactory=f"{factory}:build",
                                modelKwargs={"num_classes": 2}, preprocessing=Preprocessing.preset("study", input_size=64))
    cohort, models, settings = logic.studyInputs(request)
    path = write_request(tmp_path / "run" / "request.json", cohort, models, settings, tmp_path / "out", device="cpu")
    cohort2, models2, settings2, out, device, restart = read_request(path)
    assert (out, device, restart) == ((tmp_path / "out").resolve(), "cpu", True)
    assert settings2 == settings and settings2.preprocessing.to_dict() == settings.preprocessing.to_dict()
    assert models2 == models and models2.original.factory == f"{factory.resolve()}:build"
    study, = cohort2.studies
    image = read_image(study.image)
    assert image.same_grid(request.image)
    np.testing.assert_array_equal(image.array, request.image.array)
    np.testing.assert_array_equal(np.asarray(read_ground_truth(study.ground_truth, image)).reshape(mask.shape),
                                  request.groundTruth)
    assert (study.study_id, study.label) == (st.INPUT_STUDY_ID, 1)
    reference, = cohort2.reference_studies
    np.testing.assert_array_equal(read_image(reference.image).array, request.baselineImages[0].array)
    # A model given in memory cannot be sent: the message says what to do instead.
    from SaliencyTrustLib.cohort import StudyModels

    with pytest.raises(ValueError, match="in memory.*run in process"):
        write_request(tmp_path / "x.json", cohort, StudyModels(original=_model), settings, tmp_path / "out")


def test_protocol_lines_and_log_lines_are_told_apart():
    from SaliencyTrustLib.cohort.cli_request import parse_protocol_line, protocol_line

    line = protocol_line("progress", {"done": 3, "total": 9, "message": "gradient / original: 1 map(s)"})
    assert parse_protocol_line(line) == ("progress", {"done": 3, "total": 9, "message": "gradient / original: 1 map(s)"})
    for log in ("", "Traceback (most recent call last):", "@saliency-trust nonsense {}", "@saliency-trust progress {bad"):
        assert parse_protocol_line(log) is None


@pytest.fixture
def process_groups():
    """Process groups a test started; killed afterwards whatever the test's outcome."""
    import signal

    groups: list = []
    yield groups
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def test_cancel_kills_the_study_process_and_its_children_at_once_and_apply_resumes(
        st, scene, mk, tmp_path, qapp, monkeypatch, process_groups):
    import slicer

    volume, segmentation, _mask = chest_scene(scene, mk)
    factory, weights, _model = write_lab_model(tmp_path / "lab")
    gate = tmp_path / "slow"
    monkeypatch.setenv("LAB_CNN_GATE", str(gate))
    monkeypatch.setenv("LAB_CNN_SLEEP", "60")
    logic = st.SaliencyTrustLogic(scene)
    monkeypatch.setattr(st.SaliencyTrustLogic, "pythonExecutable", staticmethod(lambda: str(launcher(tmp_path))))
    from SaliencyTrustLib.preprocessing import Preprocessing

    request = logic.makeRequest(volume, weights, ["gradient"], criteria=["randomization"],
                                modelFactory=f"{factory}:build", workDirectory=tmp_path / "work",
                                preprocessing=Preprocessing.preset("study", input_size=32), device="cpu")
    progress, finished = [], []
    runner = logic.startEvaluation(request, onProgress=lambda f, m: progress.append(m),
                                   onFinished=lambda r, e: finished.append(e))
    process = runner.studyProcess
    deadline = time.monotonic() + 240
    while not any("map(s)" in m for m in progress) and not finished and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    assert not finished, f"the run ended before Cancel: {finished}"
    assert any("map(s)" in m for m in progress), "no unit was committed in 4 minutes"
    process_groups.append(process.pid)
    gate.write_text("")  # from now on every forward takes a minute
    while not any("SLOW FORWARD" in line for line in process.log) and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    assert any("SLOW FORWARD" in line for line in process.log)
    group = process.pid
    assert len(live_processes_in_group(group)) >= 2, "the launcher and the interpreter both run"

    cancelled_at = time.monotonic()
    runner.cancel()
    while live_processes_in_group(group) and time.monotonic() - cancelled_at < 5:
        time.sleep(0.01)
    assert live_processes_in_group(group) == [], "a process of the study survived Cancel"
    while not finished and time.monotonic() - cancelled_at < 10:
        qapp.processEvents()
        time.sleep(0.01)
    waited = time.monotonic() - cancelled_at
    assert finished and isinstance(finished[0], st.EvaluationCancelled)
    assert waited < 5, f"Cancel took {waited:.1f} s while a step takes 60 s"
    assert runner.result.cancelled and not runner.running

    # The same Apply again resumes: the committed units are not recomputed.
    from SaliencyTrustLib.cohort.store import done_unit_keys

    kept = len(done_unit_keys(tmp_path / "work"))
    assert kept >= 1
    gate.unlink()
    totals = []
    result = logic.startEvaluation(request, onProgress=lambda f, m: totals.append(m), synchronous=True).result
    assert result.results["cohort"]["n_units_stored"] > kept
    resumed = [m for m in totals if "map(s)" in m]
    assert resumed, totals
    assert set(result.mapNodes) == {"gradient"}
    assert slicer.util.arrayFromVolume(result.mapNodes["gradient"]).shape == slicer.util.arrayFromVolume(volume).shape


def test_a_failing_study_process_gives_one_line_and_keeps_its_output(st, scene, mk, tmp_path):
    volume, _segmentation, _mask = chest_scene(scene, mk)
    factory, weights, _model = write_lab_model(tmp_path / "lab")
    broken = tmp_path / "lab" / "broken.py"
    broken.write_text("def build(**kwargs):\n    raise RuntimeError('the lab forgot the width')\n")
    logic = st.SaliencyTrustLogic(scene)
    with pytest.raises(Exception) as caught:
        logic.process(volume, weights, ["gradient"], criteria=[], modelFactory=f"{broken}:build",
                      workDirectory=tmp_path / "work", device="cpu")
    message = str(caught.value)
    assert "\n" not in message and "broken.py" in message and "width" in message, message
    # Wrong factories are refused before any process starts.
    with pytest.raises(ValueError, match="MODULE:CALLABLE"):
        logic.makeRequest(volume, weights, ["gradient"], criteria=[], modelFactory="labnet")
    with pytest.raises(ValueError, match="does not exist"):
        logic.makeRequest(volume, weights, ["gradient"], criteria=[], modelFactory=f"{tmp_path}/none.py:build")


def test_a_labs_three_channel_cnn_from_weights_and_a_factory_file(st, scene, mk, tmp_path):
    """Issue 11 in Slicer: a state dict + ``labnet.py:build`` + the study's preprocessing at 64 px,
    run through the study process; the map is the core's on the same preprocessed input."""
    import slicer
    from SaliencyTrustLib.preprocessing import Preprocessing
    from SaliencyTrustLib.saliency import compute_saliency

    volume, segmentation, mask = chest_scene(scene, mk)
    factory, weights, model = write_lab_model(tmp_path / "lab")
    logic = st.SaliencyTrustLogic(scene)
    preprocessing = Preprocessing.preset("study", input_size=64)
    result = logic.process(volume, weights, ["gradient", "gradcam"], segmentationNode=segmentation,
                           criteria=["localization", "randomization"], modelFactory=f"{factory}:build",
                           modelKwargs={"num_classes": 2, "width": 8}, preprocessing=preprocessing,
                           workDirectory=tmp_path / "work", device="cpu")
    assert result.results["preprocessing"] == {"in_channels": 3, "input_size": 64, "resize": "squash",
                                               "intensity": "minmax11", "orient": True}
    assert result.results["models"]["original"]["factory"] == f"{factory.resolve()}:build"
    x, geometry = preprocessing.image_to_model(logic.imageVolumeFromNode(volume), 2)
    assert x.shape == (3, 64, 64) and x.min() >= -1 and x.max() <= 1
    batch = torch.from_numpy(x)[None]
    with torch.no_grad():
        logits = model(batch)
    assert result.predictedClass == int(logits.argmax(1)[0])
    for method in ("gradient", "gradcam"):
        core = np.asarray(compute_saliency(model, batch, method, target=[result.targetClass]))[0]
        on_grid = slicer.util.arrayFromVolume(result.mapNodes[method])
        np.testing.assert_allclose(on_grid, preprocessing.map_to_native(core, geometry), atol=1e-5)
    table = result.tableNode
    rows = table.GetNumberOfRows()
    assert rows == (2 + len(result.results["controls"])) * 2       # methods and negative controls
    assert {table.GetCellText(r, 1) for r in range(rows)} == {"localization", "randomization"}


def test_in_memory_models_run_in_process(st, scene, mk, tmp_path, monkeypatch):
    """Models given as nn.Modules never start a process (they cannot be sent to one)."""
    from SaliencyTrustLib.cohort import request_process

    volume, _segmentation, _mask = chest_scene(scene, mk)
    _factory, _weights, model = write_lab_model(tmp_path / "lab")
    started = []
    monkeypatch.setattr(request_process.StudyProcess, "start", lambda self: started.append(self) or self)
    logic = st.SaliencyTrustLogic(scene)
    from SaliencyTrustLib.preprocessing import Preprocessing

    result = logic.process(volume, tmp_path, ["gradient"], criteria=[], models={"model": model},
                           preprocessing=Preprocessing.preset("study", input_size=32), workDirectory=tmp_path / "w")
    assert started == [] and set(result.mapNodes) == {"gradient"}

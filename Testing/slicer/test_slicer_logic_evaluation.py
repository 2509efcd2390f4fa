"""The Logic end to end on real MRML: maps, scorecard table, plot, export, threading, dependencies.

Inputs are MRML nodes built like a user's (a volume with an oblique, anisotropic IJK->RAS, a
segmentation, an ROI); outputs are compared with what the core (SaliencyTrustLib) gives on the
same arrays.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch


REPO = Path(__file__).resolve().parents[2]


class QuadraticEnergy(torch.nn.Module):
    """logits = (-s, s), s = mean(x^2): its gradient is 2x/N, i.e. the map is the image itself."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1, bias=False)  # a conv so the Logic sees a 2D network
        with torch.no_grad():
            self.conv.weight.fill_(1.0)

    def forward(self, x):
        s = (self.conv(x) ** 2).flatten(1).mean(1, keepdim=True)
        return torch.cat([-s, s], dim=1)


def smooth_asymmetric_image(shape=(1, 60, 90), seed=3):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(rng.random(shape[1:]), 6)
    image[10:25, 5:30] += 0.2  # a bright patch in one corner: no symmetry to hide a flip
    return image[None].astype(np.float32)


def make_bundle(folder: Path, seeds=(0, 1, 2)) -> Path:
    """A bundle-shaped folder with three small untrained models (two of one architecture)."""
    from SaliencyTrustLib.networks import build_classifier, save_classifier

    for file_name, name, seed in (("model.pt", "densenet_small", seeds[0]),
                                  ("model_replicate.pt", "densenet_small", seeds[1]),
                                  ("model_second_arch.pt", "resnet_small", seeds[2])):
        torch.manual_seed(seed)
        save_classifier(build_classifier(name), folder / "models" / file_name, name)
    return folder


def test_maps_lie_on_the_input_grid_of_an_oblique_volume(st, scene, mk, tmp_path):
    """The map of a model that reads x^2 is the image: after the round trip through the network
    grid it must line up with the input voxel for voxel (a flip or transpose would not)."""
    import slicer

    image = smooth_asymmetric_image()
    matrix = mk.oblique_ijk_to_ras(spacing=(0.6, 0.9, 1.0), angles=(0.0, 0.0, 0.35))
    node = mk.add_volume(scene, image, matrix)
    logic = st.SaliencyTrustLogic(scene)
    model = QuadraticEnergy().eval()
    request = logic.makeRequest(node, tmp_path, ["gradient"], criteria=[])
    result = st.EvaluationResult(request=request)
    runner = st.SaliencyTrustRunner(logic.evaluationSteps(request, result, models={"model": model}),
                                    result=result)
    runner.runSynchronously()
    map_node = result.mapNodes["gradient"]
    saliency = slicer.util.arrayFromVolume(map_node)
    assert saliency.shape == image.shape
    correlation = np.corrcoef(saliency.ravel(), image.ravel())[0, 1]
    assert correlation > 0.95, correlation
    flipped = np.corrcoef(saliency[:, ::-1, :].ravel(), image.ravel())[0, 1]
    assert flipped < 0.8 * correlation
    # Same geometry as the input.
    a, b = [np.zeros((4, 4)) for _ in range(2)]
    import vtk

    for n, out in ((node, a), (map_node, b)):
        m = vtk.vtkMatrix4x4()
        n.GetIJKToRASMatrix(m)
        out[:] = st.SaliencyTrustLogic._vtkMatrixToArray(m)
    np.testing.assert_allclose(a, b)
    # And it is exactly the core's map on the same arrays (preprocess, saliency, invert).
    from SaliencyTrustLib import transforms
    from SaliencyTrustLib.saliency import compute_saliency

    pre = transforms.get_preprocessing(load=False)
    x = pre(transforms.volume_to_data(logic.imageVolumeFromNode(node)))["image"]
    core = compute_saliency(model, x[None].as_tensor(), "gradient", target=[result.targetClass])
    core = transforms.ras_channel_first_to_kji(transforms.invert_map(np.asarray(core)[0], x, pre))
    np.testing.assert_allclose(saliency, core, atol=1e-6)


def test_dependencies_are_installed_on_first_apply_after_asking(st, monkeypatch):
    import importlib.util
    import types

    import slicer

    real_find_spec = importlib.util.find_spec
    missing = {"torch", "monai"}
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in missing else real_find_spec(name, *a))
    calls = []
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda text, title=None, **kw: calls.append(("ask", text)) or answer[0], raising=False)
    monkeypatch.setattr(slicer.util, "pip_install", lambda requirements: calls.append(("pip", requirements)), raising=False)

    class PyTorchUtilsLogic:
        def installTorch(self, askConfirmation=True, torchVersionRequirement=None, **kw):
            calls.append(("torch", torchVersionRequirement))
            return torch

    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=PyTorchUtilsLogic))
    logic = st.SaliencyTrustLogic()

    answer = [False]
    with pytest.raises(st.DependencyError, match="declined"):
        logic.ensureDependencies(askConfirmation=True)
    assert [c[0] for c in calls] == ["ask"] and "monai" in calls[0][1] and "torch" in calls[0][1]

    calls.clear()
    answer[0] = True
    logic.ensureDependencies(askConfirmation=True)
    assert [c[0] for c in calls] == ["ask", "torch", "pip"]
    assert calls[1][1].startswith(">=")
    assert "monai" in calls[2][1] and "torch" not in calls[2][1]

    calls.clear()
    missing.clear()
    logic.ensureDependencies(askConfirmation=True)
    assert calls == []  # nothing missing: no question, no install


def test_importing_the_module_loads_no_heavy_dependency():
    """Slicer imports every module at start-up: torch/monai must wait for the first Apply."""
    code = ("import sys; sys.path.insert(0, %r); import conftest; conftest.load_module(); "
            "heavy = [m for m in ('torch', 'monai', 'captum', 'highdicom', 'SaliencyTrustLib.saliency') "
            "if m in sys.modules]; print(heavy); assert not heavy, heavy") % str(Path(__file__).parent)
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def _slow_steps(st, n, delay, log):
    for index in range(n):
        time.sleep(delay)  # work in the worker thread
        yield st.Step((index + 1) / n, f"step {index}", lambda index=index: log.append(index))


def test_runner_keeps_the_event_loop_alive_and_cancels_between_steps(st, qapp):
    """Steps run in a worker; their MRML updates run on the Qt thread; Cancel stops cleanly."""
    from PySide6 import QtCore

    app = qapp
    applied, ticks, finished = [], [], []
    heartbeat = QtCore.QTimer()
    heartbeat.setInterval(10)
    heartbeat.timeout.connect(lambda: ticks.append(time.monotonic()))
    heartbeat.start()
    gui_thread = QtCore.QThread.currentThread()
    threads = []

    def apply_on(index):
        threads.append(QtCore.QThread.currentThread() == gui_thread)
        applied.append(index)

    def steps():
        for index in range(50):
            time.sleep(0.02)
            yield st.Step((index + 1) / 50, f"step {index}", lambda index=index: apply_on(index))

    runner = st.SaliencyTrustRunner(steps(), onFinished=lambda r, e: finished.append(e), pollIntervalMs=5)
    runner.start()
    deadline = time.monotonic() + 20
    while not finished and time.monotonic() < deadline:
        app.processEvents()
        if len(applied) >= 5 and not runner.cancelRequested:
            runner.cancel()
        time.sleep(0.002)
    heartbeat.stop()
    assert finished and isinstance(finished[0], st.EvaluationCancelled)
    assert 5 <= len(applied) < 50, "cancel must stop the worker before the remaining steps"
    assert all(threads), "MRML updates must run on the GUI thread"
    assert len(ticks) >= 5, "the event loop must keep running while the worker computes"
    assert not runner.running


def test_runner_reports_a_worker_error_on_the_gui_thread(st, qapp):
    from PySide6 import QtCore

    app = qapp
    finished = []

    def steps():
        yield st.Step(0.5, "half")
        raise ValueError("model file is corrupt")

    runner = st.SaliencyTrustRunner(steps(), onFinished=lambda r, e: finished.append(e), pollIntervalMs=5)
    runner.start()
    deadline = time.monotonic() + 10
    while not finished and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.002)
    assert isinstance(finished[0], ValueError) and "corrupt" in str(finished[0])
    assert "Traceback" in finished[0].traceback

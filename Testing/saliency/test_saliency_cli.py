"""``saliency-trust saliency``: one image in, its map out on the same geometry."""

import numpy as np
import pytest

from SaliencyTrustLib.cli import main


def test_saliency_command_writes_the_map_on_the_image_grid(tmp_path, capsys):
    from SaliencyTrustLib.image import ImageVolume
    from SaliencyTrustLib.io import read_image
    from SaliencyTrustLib.io.nifti_write import write_nifti
    from SaliencyTrustLib.networks import build_classifier, save_classifier

    save_classifier(build_classifier("densenet_small"), tmp_path / "w.pt", "densenet_small")
    image = ImageVolume(np.random.default_rng(0).random((1, 40, 36)).astype(np.float32), spacing=(0.5, 0.7, 1.0),
                        origin=(10.0, -5.0, 2.0))
    write_nifti(image, tmp_path / "case.nii.gz")
    code = main(["saliency", "--image", str(tmp_path / "case.nii.gz"), "--model", str(tmp_path / "w.pt"),
                 "--method", "integrated_gradients", "--param", "n_steps=3", "--target", "1",
                 "--out", str(tmp_path / "out")])
    assert code == 0
    assert "class 1" in capsys.readouterr().out
    written = read_image(tmp_path / "out" / "case_integrated_gradients.nii.gz")
    assert written.array.shape == (1, 40, 36)
    np.testing.assert_allclose(written.spacing, image.spacing, rtol=1e-6)
    np.testing.assert_allclose(written.origin, image.origin, atol=1e-5)
    saved = np.load(tmp_path / "out" / "case_integrated_gradients.npy")
    # the [0, 1] map of the 224 px model grid, resampled bilinearly onto the 40 x 36 image grid
    assert saved.min() >= 0 and 0.5 < saved.max() <= 1.0
    np.testing.assert_array_equal(saved, written.array)
    assert (tmp_path / "out" / ".run_case_integrated_gradients" / "results.json").is_file()


def test_saliency_command_rejects_a_bad_param(tmp_path):
    with pytest.raises(SystemExit):
        main(["saliency", "--image", "x.nii.gz", "--model", "w.pt", "--param", "n_steps", "--out", str(tmp_path)])

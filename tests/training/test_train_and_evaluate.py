"""The training and evaluation commands end to end on the tiny stand-in head: a few steps, real
code paths (render cache, both stages, the unpaired photo path, the ablation, the reports)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from backend.estimator.weights import load_model, read_metadata
from backend.training.dataset import DownsampledPairs, RenderedPairs, build_cache
from backend.training.evaluate import angular_errors, luminance_gradient_normals, summarize

pytestmark = pytest.mark.slow   # training and evaluation runs


def run_backend(*args):
    return subprocess.run([sys.executable, "-m", "backend", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tiny_facekit, astronaut, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    photos = folder / "photos"
    photos.mkdir()
    Image.fromarray(astronaut).save(photos / "astronaut.png")
    done = run_backend("train", "--data", tiny_facekit, "--photos", photos, "--smoke",
                       "--output", folder / "model", "--cache", folder / "cache")
    assert done.returncode == 0, done.stderr
    return folder


def test_training_writes_weights_config_log_and_curves(trained):
    for name in ("model.safetensors", "model_no_attention.safetensors", "model.json",
                 "model_log.jsonl", "model_loss.png"):
        assert (trained / name).is_file(), name
    model = load_model(trained / "model.safetensors")
    with torch.no_grad():
        out = model(torch.rand(1, 3, 256, 256))
    assert torch.allclose(out.norm(dim=1), torch.ones(1, 256, 256), atol=1e-3)
    _, provenance = read_metadata(trained / "model.safetensors")
    assert provenance["settings"]["coarse_steps"] == 2 and "train" in provenance["command"]
    rows = [json.loads(line) for line in (trained / "model_log.jsonl").read_text().splitlines()]
    stages = {row["stage"] for row in rows}
    assert stages == {"coarse", "refine", "coarse-no-attention"}
    assert any("unpaired" in row for row in rows)           # the real-photo path ran
    assert all(np.isfinite(row["loss"]) for row in rows)
    plain, _ = read_metadata(trained / "model_no_attention.safetensors")
    assert plain.attention_blocks == 0


def test_refining_only_keeps_the_given_coarse_network(trained, tiny_facekit, tmp_path):
    done = run_backend("train", "--data", tiny_facekit, "--smoke", "--coarse-from",
                       trained / "model.safetensors", "--output", tmp_path / "refined",
                       "--cache", trained / "cache")
    assert done.returncode == 0, done.stderr
    before, after = load_model(trained / "model.safetensors"), load_model(tmp_path / "refined.safetensors")
    for (name, old), new in zip(before.coarse.state_dict().items(), after.coarse.state_dict().values()):
        assert torch.equal(old, new), name
    assert any(not torch.equal(a, b) for a, b in zip(before.refine.state_dict().values(),
                                                     after.refine.state_dict().values()))
    rows = [json.loads(line) for line in (tmp_path / "refined_log.jsonl").read_text().splitlines()]
    assert {row["stage"] for row in rows} == {"refine"}
    assert not (tmp_path / "refined_no_attention.safetensors").exists()
    _, provenance = read_metadata(tmp_path / "refined.safetensors")
    assert provenance["coarse_from"] == str(trained / "model.safetensors")


def test_refining_from_a_file_that_is_no_model_is_a_clear_error(tiny_facekit, tmp_path):
    (tmp_path / "junk.safetensors").write_text("not weights")
    done = run_backend("train", "--data", tiny_facekit, "--smoke", "--coarse-from", tmp_path / "junk.safetensors",
                       "--output", tmp_path / "refined", "--cache", tmp_path / "cache")
    assert done.returncode != 0 and "junk.safetensors" in done.stderr and "Traceback" not in done.stderr


def test_evaluate_prints_every_row_as_json(trained, tiny_facekit):
    done = run_backend("evaluate", "--data", tiny_facekit, "--weights", trained / "model.safetensors",
                       "--people", "3", "--sheet", trained / "sheet.png", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    names = [(row["name"], row["region"]) for row in report["rows"]]
    methods = ["shipped model (refined)", "coarse stage alone", "previous model (refined)",
               "coarse, no attention", "flat (0, 0, 1)", "luminance gradient"]
    assert names == [(m, "face") for m in methods] + [(m, "subject") for m in methods]
    for row in report["rows"]:
        assert set(row) == {"name", "region", "mean", "median", "rmse", "p11", "p22", "p30"}
        assert 0 <= row["median"] <= 180 and row["p11"] <= row["p22"] <= row["p30"] <= 100
    assert report["parameters"] > 1_000_000
    sheet = np.asarray(Image.open(trained / "sheet.png"))
    assert sheet.shape[1] == 4 * 256 and sheet.shape[0] == 3 * 256


def test_the_cache_is_reused_and_mirroring_flips_x(tiny_facekit, tmp_path):
    folder = build_cache(tiny_facekit, tmp_path / "cache", 3, size=64, workers=1)
    stamp = (folder / "images.npy").stat().st_mtime_ns
    assert build_cache(tiny_facekit, folder, 3, size=64, workers=1) == folder
    assert (folder / "images.npy").stat().st_mtime_ns == stamp
    plain = RenderedPairs(folder, mirror=False)
    image, normals, face, valid = plain[0]
    assert image.shape == (3, 64, 64) and normals.shape == (3, 64, 64)
    mirrored = RenderedPairs(folder, mirror=True)
    for _ in range(20):  # mirroring is random: find a mirrored draw
        m_image, m_normals, _, _ = mirrored[0]
        if not torch.equal(m_image, image):
            break
    assert torch.equal(m_image, image.flip(-1))
    assert torch.allclose(m_normals[0], -normals[0].flip(-1)) and torch.equal(m_normals[1], normals[1].flip(-1))


def test_the_coarse_set_is_the_cache_at_the_coarse_side(tiny_facekit, tmp_path):
    folder = build_cache(tiny_facekit, tmp_path / "cache", 3, size=64, workers=1)
    plain = RenderedPairs(folder, range(1, 3), mirror=False)
    small = DownsampledPairs(plain, 32, chunk=1)
    assert len(small) == 2
    image, normals, _face, valid = plain[1]
    s_image, s_normals, s_valid = small[1]
    assert s_image.shape == (3, 32, 32) and s_normals.shape == (3, 32, 32) and s_valid.shape == (1, 32, 32)
    assert torch.allclose(s_image, F.avg_pool2d(image, 2), atol=1e-3)          # float16 in memory
    on_face = s_valid[0] > 0
    assert on_face.sum() > 20 and set(s_valid.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(s_normals.norm(dim=0)[on_face], torch.ones(()), atol=2e-3)
    assert torch.equal(s_valid[0], F.avg_pool2d(valid, 2)[0] > 0.99)
    mirrored = DownsampledPairs(RenderedPairs(folder, range(1, 3), mirror=True), 32)
    for _ in range(20):
        m_image, m_normals, m_valid = mirrored[1]
        if not torch.equal(m_image, s_image):
            break
    assert torch.equal(m_image, s_image.flip(-1)) and torch.equal(m_valid, s_valid.flip(-1))
    assert torch.equal(m_normals[0], -s_normals[0].flip(-1)) and torch.equal(m_normals[2], s_normals[2].flip(-1))


def test_metric_on_known_angles():
    truth = np.zeros((1, 4, 3), np.float32)
    truth[..., 2] = 1
    angles = np.radians([0.0, 10.0, 20.0, 60.0])
    pred = np.stack([np.sin(angles), np.zeros(4), np.cos(angles)], -1)[None].astype(np.float32)
    errors = angular_errors(pred, truth, np.ones((1, 4)))
    assert np.allclose(errors, [0, 10, 20, 60], atol=1e-3)
    row = summarize("x", errors)
    assert row["mean"] == pytest.approx(22.5, abs=1e-3) and row["median"] == pytest.approx(15, abs=1e-3)
    assert (row["p11"], row["p22"], row["p30"]) == (50.0, 75.0, 75.0)


def test_luminance_gradient_baseline_tilts_toward_brighter_pixels_like_the_tools():
    ramp = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))  # brighter to the right
    normals = luminance_gradient_normals(np.dstack([ramp] * 3))
    assert normals[16, 16, 0] < -0.05 and abs(normals[16, 16, 1]) < 1e-3


def test_angular_loss_is_the_mean_angle_over_the_mask_with_finite_gradients():
    from backend.training import losses
    angles = torch.tensor([0.0, 10.0, 20.0, 60.0]).deg2rad()
    pred = torch.stack([angles.sin(), torch.zeros(4), angles.cos()]).view(1, 3, 1, 4).requires_grad_()
    truth = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 1, 4)
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0]).view(1, 1, 1, 4)       # the 60 degrees do not count
    loss = losses.angular(pred, truth, mask)
    assert loss.item() == pytest.approx(np.radians(10.0), abs=1e-3)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0, 0, 0, 3] == 0


def test_resume_continues_from_the_last_checkpoint(trained, tiny_facekit, tmp_path):
    """A finished run's checkpoint is its last step: resuming from it trains nothing more and
    writes the same weights; the log keeps the rows it had."""
    args = ("train", "--data", tiny_facekit, "--smoke", "--no-ablation", "--checkpoint-every", "1",
            "--output", tmp_path / "run", "--cache", trained / "cache")
    assert run_backend(*args).returncode == 0
    first = load_model(tmp_path / "run.safetensors").state_dict()
    rows = (tmp_path / "run_log.jsonl").read_text().splitlines()
    done = run_backend(*args, "--resume")
    assert done.returncode == 0, done.stderr
    again = load_model(tmp_path / "run.safetensors").state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert (tmp_path / "run_log.jsonl").read_text().splitlines() == rows
    _, provenance = read_metadata(tmp_path / "run.safetensors")
    assert provenance["resumed"] is True

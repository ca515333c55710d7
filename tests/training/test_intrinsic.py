"""The v3 path on the tiny stand-in head: the renders' new truth, the photometric loss on it,
the models' outputs, and the gpu recipe's code path end to end (tiny recipe, CPU), resumed."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from backend.estimator import models
from backend.training import losses
from backend.training.facekit import FaceKit
from backend.training.intrinsic_training import RECIPES, at_side, checkpoint_bytes
from backend.training.synthetic import FaceRenderer
from backend.tools.pack_training_inputs import pack_portraits


def as_batch(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float()


def test_renders_carry_albedo_and_light_that_explain_them(tiny_facekit):
    renderer = FaceRenderer(FaceKit(tiny_facekit), 128, plain_camera=True)
    sample = renderer.test_sample(0, "face")
    assert sample.albedo.shape == (128, 128, 3) and sample.light.shape == (9, 3)
    assert sample.albedo.min() >= 0 and sample.albedo.max() <= 1 and sample.light[0].mean() > 0
    assert not sample.albedo[sample.subject < 0.5].any()
    mask = torch.from_numpy(sample.valid * sample.subject)[None, None]
    image, albedo, normals = as_batch(sample.image), as_batch(sample.albedo), as_batch(sample.normals)
    light = torch.from_numpy(sample.light)[None]
    residual = losses.photometric_residual(image, albedo, normals, light)[0].abs().mean(0)
    # the bulk is explained to a few percent; cast shadows and highlights are the residual's tail
    assert float(residual[mask[0, 0] > 0.5].median()) < 0.03
    own = losses.photometric(image, albedo, normals, light, mask)
    other = renderer.test_sample(0, "face", light_seed=12345)
    wrong = losses.photometric(image, albedo, normals, torch.from_numpy(other.light)[None], mask)
    assert float(wrong) > 3 * float(own)


def test_the_light_term_asks_for_the_light_that_explains_the_photo_with_the_albedo(tiny_facekit):
    """An albedo half the truth explains the photo only with twice the light: the light term must
    take that pair as right, as the photometric term does, and the true light as wrong."""
    sample = FaceRenderer(FaceKit(tiny_facekit), 96, plain_camera=True).test_sample(0, "face")
    mask = torch.from_numpy(sample.valid * sample.subject)[None, None]
    albedo, truth = as_batch(sample.albedo), torch.from_numpy(sample.light)[None]
    scale = losses.channel_scale(albedo / 2, albedo, mask)
    assert float(losses.light(2 * truth, truth, scale)) < 1e-5
    assert float(losses.light(truth, truth, scale)) > 0.1


def test_another_light_changes_only_the_light(tiny_facekit):
    renderer = FaceRenderer(FaceKit(tiny_facekit), 96)
    a, b = renderer.test_sample(1), renderer.test_sample(1, light_seed=99)
    assert np.array_equal(a.normals, b.normals) and np.array_equal(a.albedo, b.albedo)
    assert not np.allclose(a.light, b.light) and not np.array_equal(a.image, b.image)
    painted = renderer.test_sample(1, paint=True)
    assert np.array_equal(painted.normals, a.normals) and not np.array_equal(painted.albedo, a.albedo)


@pytest.mark.parametrize("name", sorted(models.SIZES))
def test_each_size_gives_unit_normals_albedo_and_light(name, tmp_path):
    net = models.create_model(name, **RECIPES["tiny"].__dict__[name]).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 64, 64))
    assert torch.allclose(out["normals"].norm(dim=1), torch.ones(2, 64, 64), atol=1e-4)
    assert out["albedo"].shape == (2, 3, 64, 64) and 0 <= out["albedo"].min() and out["albedo"].max() <= 1
    assert out["light"].shape == (2, 9, 3)
    models.save_model(net, tmp_path / "m.safetensors", provenance={"note": "test"})
    again = models.load_model(tmp_path / "m.safetensors")
    with torch.no_grad():
        assert torch.allclose(again(torch.full((1, 3, 64, 64), 0.5))["normals"],
                              net(torch.full((1, 3, 64, 64), 0.5))["normals"], atol=2e-2)


def test_the_fast_size_runs_and_learns_its_wider_crops_at_half_the_side():
    """The fast size's wider crops are cut at half its input side (the pipeline, crop_sides); in
    training every other batch comes at that side: maps area-resampled, normals unit, light kept."""
    assert models.create_model("fast").config.wide_size == 256 == models.create_model("quality").config.wide_size / 2
    normals = torch.nn.functional.normalize(torch.randn(2, 3, 8, 8), dim=1)
    batch = {"image": torch.rand(2, 3, 8, 8), "normals": normals, "valid": torch.ones(2, 1, 8, 8),
             "light": torch.rand(2, 9, 3)}
    half = at_side(batch, 4)
    assert half["image"].shape == (2, 3, 4, 4)
    assert torch.allclose(half["image"][..., 0, 0], batch["image"][..., :2, :2].mean((-2, -1)))
    assert torch.allclose(half["normals"].norm(dim=1), torch.ones(2, 4, 4)) and half["light"] is batch["light"]
    assert at_side(batch, 8)["image"] is batch["image"]


@pytest.mark.parametrize("name", sorted(models.SIZES))
def test_the_gpu_recipes_checkpoints_fit_in_16_mb_files(name):
    weights, moments = checkpoint_bytes(models.create_model(name, **RECIPES["gpu"].__dict__[name]))
    assert weights < 15 * 2 ** 20 and moments < 15 * 2 ** 20


@pytest.fixture(scope="module")
def inputs(tiny_facekit, astronaut, tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    for name in ("ict_facekit_light_packed.npz", "vertex_indices.json"):
        (folder / name).write_bytes((tiny_facekit / name).read_bytes())
    pack_portraits([astronaut], folder / "portraits.npz")
    return folder


def train(inputs, output, *extra):
    return subprocess.run([sys.executable, "-m", "backend", "train", "--recipe", "tiny", "--inputs", str(inputs),
                           "--output", str(output), *extra], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_recipe_writes_at_most_8_small_files_and_resumes(inputs, tmp_path):
    done = train(inputs, tmp_path / "run")
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == sorted(["fast.safetensors", "quality.safetensors", "fast_checkpoint.pt", "fast_moments.pt",
                            "quality_checkpoint.pt", "quality_moments.pt", "log.jsonl", "scores.json"])
    assert all((tmp_path / "run" / f).stat().st_size <= 16 * 2 ** 20 for f in files)
    report = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert report["steps_done"] == RECIPES["tiny"].steps
    tables = {row["table"] for row in report["scores"]}
    assert tables == {"normals", "albedo", "lighting", "pigment", "cost"}
    assert {row["name"] for row in report["scores"] if row["table"] == "normals"} >= {"shipped model", "fast",
                                                                                      "quality"}
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(RECIPES["tiny"].steps))
    assert any("quality_photometric" in r for r in rows) and any("fast_distil" in r for r in rows)
    assert all(np.isfinite(r["quality_loss"]) and np.isfinite(r["fast_loss"]) for r in rows)
    # a second run continues from the checkpoints: nothing left to train, the log kept
    again = train(inputs, tmp_path / "run", "--resume")
    assert again.returncode == 0, again.stderr
    report = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert report["resumed_at"] == RECIPES["tiny"].steps
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == RECIPES["tiny"].steps


@pytest.mark.slow
def test_minutes_bounds_the_training_and_still_writes_and_scores(inputs, tmp_path):
    done = train(inputs, tmp_path / "run", "--minutes", "0")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert report["steps_done"] == 0 and report["settings"]["train_seconds"] == 0
    assert (tmp_path / "run" / "fast.safetensors").is_file() and report["scores"]


def test_a_normals_only_model_is_scored_through_the_fallback_fit(tiny_facekit, untrained_weights):
    """The 8th model has no albedo or light: its rows come from the backend's fitted light."""
    from backend.training.intrinsic_evaluation import evaluate_models
    rows = evaluate_models({"8th": untrained_weights}, tiny_facekit, people=2, size=128, workers=1,
                           lights=2, spread_people=1)
    fitted = {row["table"]: row for row in rows if row["name"] == "8th + fitted light"}
    assert set(fitted) == {"albedo", "lighting"}
    assert np.isfinite(fitted["albedo"]["error"]) and fitted["albedo"]["lighting_spread"] is not None
    assert 0 <= fitted["lighting"]["direction_error_mean"] <= 180
    names = {row["name"] for row in rows if row["table"] == "albedo"}
    assert {"photo (baseline)", "flat colour (baseline)", "retinex (baseline)"} <= names

"""Two-stage training, as the paper does it, end to end in one command:

1. the coarse exemplar network on a SMALL paired set (the "rags": `rags` renders), angular loss;
2. the refinement network on image + exemplar (coarse frozen) over the whole rendered set, with
   the angular and normal-gradient (detail) losses, plus,
   when a folder of real face photos is given, the unpaired terms on those photos (the exemplar's
   low frequencies must survive refinement; normals stay smooth where the photo is smooth).

Writes <output>.safetensors (fp16), <output>.json (settings, timings), <output>_log.jsonl and
<output>_loss.png.  Optionally also trains the no-attention coarse network for the ablation.
With `coarse_from` (an earlier weights file) stage 1 is taken from there and only stage 2 runs:
how to refine on your own photo collection without the hour that stage 1 takes.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..estimator.networks import FaceNormalNet, ModelConfig, build_model, count_parameters
from ..estimator.weights import load_model, save_weights
from . import augment, losses
from .dataset import DownsampledPairs, RenderedPairs, build_cache
from .settings import TrainSettings

logger = logging.getLogger(__name__)


class TrainingDataError(ValueError):
    """The training data cannot be used (e.g. no faces in the unpaired photos)."""


def learning_rate(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first 3%, then cosine decay to zero."""
    warm = max(1, int(0.03 * total))
    if step < warm:
        return peak * (step + 1) / warm
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def optimisation_steps(module: torch.nn.Module, data: Dataset, batch_size: int, steps: int,
                       peak: float):
    """(step, batch, optimizer) for `steps` AdamW steps on the module's parameters, cycling
    through shuffled data, with the learning rate of `learning_rate` set for each step."""
    optimizer = torch.optim.AdamW(module.parameters(), peak, weight_decay=1e-4)
    loader = DataLoader(data, batch_size, shuffle=True, drop_last=True)
    batches: Iterator = iter(())
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, peak)
        batch = next(batches, None)
        if batch is None:
            batches = iter(loader)
            batch = next(batches)
        yield step, [t.contiguous(memory_format=torch.channels_last) for t in batch], optimizer


def mixed_precision(settings: TrainSettings):
    """bf16 autocast for the forward passes where the CPU computes bf16 natively (elsewhere it
    would be emulated, and slower than float32).  Losses are taken in float32."""
    enabled = settings.bf16 and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def as_float_normals(normals: torch.Tensor) -> torch.Tensor:
    return F.normalize(normals.float(), dim=1)


class Log:
    def __init__(self, path: Path):
        self.path, self.start = path, time.perf_counter()
        self.rows: list[dict] = []
        path.write_text("")

    def __call__(self, **row) -> None:
        row["seconds"] = round(time.perf_counter() - self.start, 1)
        self.rows.append(row)
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        if row.get("step", 0) % 50 == 0 or row.get("final"):
            logger.info(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in row.items()))


def train_coarse(model: FaceNormalNet, data: DownsampledPairs, settings: TrainSettings, log: Log,
                 stage: str) -> None:
    """`data` at the side the coarse network works at: it trains there, against downsampled truth."""
    coarse = model.coarse.train()
    for step, batch, optimizer in optimisation_steps(coarse, data, settings.coarse_batch,
                                                     settings.coarse_steps, settings.learning_rate):
        image, truth, valid = batch
        if settings.augment:
            image, truth, valid = augment.zoom_and_shift(augment.photometric(image), truth, valid)
        # Shape only: the exemplar is meant to be coarse, and at 128^2 the skin relief is noise
        # to it (a gradient term here slowed learning the shape in trials).
        with mixed_precision(settings):
            pred = coarse(image)
        loss = losses.angular(as_float_normals(pred), truth, valid)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        log(stage=stage, step=step, loss=loss.item(), angular=loss.item())


def random_crops(size: int, *tensors: torch.Tensor) -> list[torch.Tensor]:
    height, width = tensors[0].shape[-2:]
    y = int(torch.randint(0, height - size + 1, ()))
    x = int(torch.randint(0, width - size + 1, ()))
    return [t[..., y:y + size, x:x + size] for t in tensors]


def train_refine(model: FaceNormalNet, data: RenderedPairs, photos: torch.Tensor | None,
                 settings: TrainSettings, log: Log) -> None:
    model.coarse.eval()
    for p in model.coarse.parameters():
        p.requires_grad_(False)
    refine = model.refine.train()
    for step, batch, optimizer in optimisation_steps(refine, data, settings.refine_batch,
                                                     settings.refine_steps, settings.learning_rate):
        image, truth, _face, valid = batch
        with torch.no_grad(), mixed_precision(settings):
            exemplar = as_float_normals(model.coarse(image))
        image, exemplar, truth, valid = random_crops(settings.refine_crop, image, exemplar, truth, valid)
        with mixed_precision(settings):
            pred = refine(image, exemplar)
        pred = as_float_normals(pred)
        angular = losses.angular(pred, truth, valid)
        detail = losses.gradient(pred, truth, valid)
        loss = angular + settings.gradient_weight * detail
        row = dict(stage="refine", step=step, loss=loss.item(), angular=angular.item(),
                   gradient=detail.item())
        if photos is not None and step % settings.unpaired_every == 0:
            real = augment_photos(photos, settings.refine_batch // 2)
            with torch.no_grad(), mixed_precision(settings):
                real_exemplar = as_float_normals(model.coarse(real))
            real, real_exemplar = random_crops(settings.refine_crop, real, real_exemplar)
            with mixed_precision(settings):
                refined = refine(real, real_exemplar)
            refined = as_float_normals(refined)
            unpaired = (losses.exemplar_consistency(refined, real_exemplar)
                        + losses.edge_aware_smoothness(refined, real))
            loss = loss + settings.unpaired_weight * unpaired
            row["unpaired"] = unpaired.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        log(**row)


def augment_photos(photos: torch.Tensor, count: int) -> torch.Tensor:
    """A batch of real face crops, each mirrored at random and under a new exposure, white
    balance and gamma (the renders' photometric augmentation)."""
    picks = photos[torch.randint(0, len(photos), (count,))]
    mirror = torch.rand(count) < 0.5
    picks = torch.where(mirror.view(-1, 1, 1, 1), picks.flip(-1), picks)
    return augment.photometric(picks)


def load_photo_crops(folder: Path, size: int) -> torch.Tensor:
    """Face crops, as the pipeline would cut them, from every photo in a folder."""
    from ..core.files import expand_inputs
    from ..estimator import geometry
    from ..estimator.detection import FaceDetector
    from ..estimator.image_io import ImageError, read_image

    detector, crops = FaceDetector(), []
    for path in expand_inputs([str(folder)]):
        try:
            image = read_image(path)
        except ImageError as error:
            logger.warning("skipping %s", error)
            continue
        for face in detector.detect(image):
            crops.append(geometry.cut_crop(image, geometry.crop_for_face(face), size))
    if not crops:
        raise TrainingDataError(f"no faces found in the photos of {folder}")
    logger.info("unpaired path: %d face crops from %s", len(crops), folder)
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()


def plot_losses(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(dict.fromkeys(r["stage"] for r in rows))
    figure, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 3.5), squeeze=False)
    for axis, stage in zip(axes[0], stages):
        picked = [r for r in rows if r["stage"] == stage]
        steps = np.array([r["step"] for r in picked])
        for key in ("loss", "angular", "gradient", "unpaired"):
            values = [(r["step"], r[key]) for r in picked if key in r]
            if values:
                x, y = np.array(values).T
                window = max(1, len(y) // 50)
                smooth = np.convolve(y, np.ones(window) / window, mode="valid")
                axis.plot(x[window - 1:], smooth, label=key)
        axis.set_title(stage)
        axis.set_xlabel("step")
        axis.set_yscale("log")
        axis.set_xlim(0, max(1, steps.max()))
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def train(data: Path, output: Path, cache: Path, settings: TrainSettings, photos: Path | None,
          config: ModelConfig = ModelConfig(), coarse_from: Path | None = None) -> dict:
    # Loaded first, so that a bad file fails before the rendering.
    source = load_model(coarse_from) if coarse_from is not None else None
    if source is not None:
        config = source.config
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    output = output.with_suffix("")
    output.parent.mkdir(parents=True, exist_ok=True)
    log = Log(output.parent / f"{output.name}_log.jsonl")
    timings = {}

    start = time.perf_counter()
    build_cache(data, cache, settings.samples, size=config.input_size,
                progress=lambda i, n: logger.info("rendered %d/%d", i, n) if i % 500 == 0 else None)
    timings["render"] = time.perf_counter() - start
    everything = RenderedPairs(cache)
    rags = None   # the coarse network's set, held in memory at the side it works at
    if source is None:
        rags = DownsampledPairs(RenderedPairs(cache, range(min(settings.rags, settings.samples))),
                                config.coarse_size)
    real = load_photo_crops(photos, config.input_size) if photos else None

    # channels-last convolutions train ~20% faster on the CPU; the weights are saved contiguous.
    model = build_model(config).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    start = time.perf_counter()
    if source is not None:
        model.coarse.load_state_dict(source.coarse.state_dict())
    else:
        assert rags is not None
        train_coarse(model, rags, settings, log, "coarse")
    timings["coarse"] = time.perf_counter() - start
    start = time.perf_counter()
    train_refine(model, everything, real, settings, log)
    timings["refine"] = time.perf_counter() - start

    report = {"settings": dataclasses.asdict(settings), "config": config.to_dict(),
              "parameters": count_parameters(model), "timings_s": {k: round(v) for k, v in timings.items()},
              "machine": f"{platform.machine()}, {settings.threads} threads, torch {torch.__version__}",
              "command": " ".join(sys.argv), "unpaired_photos": str(photos) if photos else None,
              "coarse_from": str(coarse_from) if coarse_from else None}
    save_weights(model.eval(), output.with_suffix(".safetensors"), provenance=report)

    if settings.ablation and coarse_from is None:
        plain = build_model(dataclasses.replace(config, attention_blocks=0))
        plain = plain.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        start = time.perf_counter()
        assert rags is not None
        train_coarse(plain, rags, settings, log, "coarse-no-attention")
        timings["coarse_no_attention"] = time.perf_counter() - start
        report["timings_s"] = {k: round(v) for k, v in timings.items()}
        save_weights(plain.eval(), output.parent / f"{output.name}_no_attention.safetensors",
                     provenance={**report, "note": "ablation: only the coarse network is trained"})
    (output.parent / f"{output.name}.json").write_text(json.dumps(report, indent=2))
    plot_losses(log.rows, output.parent / f"{output.name}_loss.png")
    return report

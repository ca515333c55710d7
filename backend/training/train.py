"""Two-stage training, as the paper does it, end to end in one command:

1. the coarse exemplar network on a SMALL paired set (the "rags": `rags` renders), angular loss;
2. the refinement network on image + exemplar (coarse frozen) over the whole rendered set, with
   the angular and normal-gradient (detail) losses, plus,
   when real photos are given (`portraits`: the training side of the fixed portrait split, and/or
   a folder of `photos`), the unpaired terms on their face and head-and-shoulders crops (the
   exemplar's low frequencies must survive refinement; normals stay smooth where the photo is
   smooth) and in both stages consistency: the same photo mirrored, rescaled, shifted,
   recompressed and recoloured must give the same normals once mapped back.

Writes <output>.safetensors (fp16), <output>.json (settings, timings), <output>_log.jsonl and
<output>_loss.png.  Optionally also trains the no-attention coarse network for the ablation.
With `coarse_from` (an earlier weights file) stage 1 is taken from there and only stage 2 runs:
how to refine on your own photo collection without the hour that stage 1 takes.  With `init`
both stages run, starting from an earlier model's coarse network (the 8th model fine-tuned the 7th).

Every `checkpoint_every` steps the model, optimiser, step and random state go to
<output>_checkpoint.pt; `resume` continues from there.  Batches are a function of the step (a
seeded permutation per pass), so a resumed run draws what the uninterrupted one would have.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..estimator.networks import FaceNormalNet, ModelConfig, build_model, count_parameters, mirrored_normals
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


class Checkpoints:
    """One file holding where a run is: stage, step, model, optimiser and random state."""

    def __init__(self, path: Path, every: int):
        self.path, self.every = path, every

    def save(self, stage: str, step: int, model: torch.nn.Module, optimizer) -> None:
        state = {"stage": stage, "step": step, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}
        partial = self.path.with_suffix(".partial")
        torch.save(state, partial)
        os.replace(partial, self.path)   # never a half-written checkpoint

    def load(self) -> dict | None:
        return torch.load(self.path, weights_only=False) if self.path.is_file() else None


def batch_indices(step: int, batch_size: int, count: int, seed: int) -> torch.Tensor:
    """The items of a step's batch: pass p = step * batch // count is a permutation seeded by
    (seed, p), so the batches depend on the step alone (what makes resuming exact)."""
    per_pass = count // batch_size
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100_003 + step // per_pass))
    start = (step % per_pass) * batch_size
    return order[start:start + batch_size]


def optimisation_steps(module: torch.nn.Module, data: Dataset, batch_size: int, steps: int,
                       peak: float, *, seed: int = 0, resume: dict | None = None):
    """(step, batch, optimizer) for `steps` AdamW steps on the module's parameters, cycling
    through shuffled data, with the learning rate of `learning_rate` set for each step; from
    a checkpoint's step and optimiser state when resuming."""
    optimizer = torch.optim.AdamW(module.parameters(), peak, weight_decay=1e-4)
    first = 0
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        torch.set_rng_state(resume["rng"])
        first = resume["step"] + 1
    for step in range(first, steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, peak)
        items = [data[int(i)] for i in batch_indices(step, batch_size, len(data), seed)]  # type: ignore[arg-type]
        batch = [torch.stack(parts) for parts in zip(*items)]
        yield step, [t.contiguous(memory_format=torch.channels_last) for t in batch], optimizer


def mixed_precision(settings: TrainSettings, device: torch.device = torch.device("cpu")):
    """bf16 autocast for the forward passes on a GPU, and on a CPU where it computes bf16 natively
    (elsewhere it would be emulated, and slower than float32).  Losses are taken in float32."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=settings.bf16)
    enabled = settings.bf16 and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def as_float_normals(normals: torch.Tensor) -> torch.Tensor:
    return F.normalize(normals.float(), dim=1)


class Log:
    def __init__(self, path: Path, keep: bool = False):
        """keep: a resumed run appends to the log it continues."""
        self.path, self.start = path, time.perf_counter()
        self.rows: list[dict] = []
        if keep and path.is_file():
            self.rows = [json.loads(line) for line in path.read_text().splitlines() if line]
        else:
            path.write_text("")

    def __call__(self, **row) -> None:
        row["seconds"] = round(time.perf_counter() - self.start, 1)
        self.rows.append(row)
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        if row.get("step", 0) % 50 == 0 or row.get("final"):
            logger.info(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in row.items()))


def consistency(net, image: torch.Tensor, settings: TrainSettings) -> torch.Tensor:
    """Mean angle (radians) between a network's normals for real photos and for a changed copy
    of them mapped back: mirrored, shifted and zoomed, rescaled (detail lost), recompressed as
    JPEG 30-90 and recoloured, each change applied to the batch with probability 1/2."""
    changed = image
    mirror = bool(torch.rand(()) < 0.5)
    if mirror:
        changed = changed.flip(-1)
    warp = bool(torch.rand(()) < 0.5)
    valid = torch.ones_like(image[:, :1])
    if warp:  # the copy is the photo shifted and zoomed; the original's map is moved to match
        theta = torch.zeros(len(image), 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 + (torch.rand(len(image)) * 2 - 1) * 0.06
        theta[:, :, 2] = (torch.rand(len(image), 2) * 2 - 1) * 0.12
        theta = theta.to(image.device)
        grid = F.affine_grid(theta, list(image.shape), align_corners=False)
        changed = F.grid_sample(changed, grid, mode="bilinear", padding_mode="border", align_corners=False)
        valid = (F.grid_sample(valid, grid, padding_mode="zeros", align_corners=False) > 0.99).float()
    if torch.rand(()) < 0.5:
        side = image.shape[-1]
        small = int(side * float(torch.empty(()).uniform_(0.35, 0.75)))
        changed = F.interpolate(F.interpolate(changed, size=(small, small), mode="area"),
                                size=(side, side), mode="bilinear", align_corners=False)
    if torch.rand(()) < 0.5:
        changed = augment.jpeg(changed, int(torch.randint(30, 91, ())))
    if torch.rand(()) < 0.5:
        changed = augment.photometric(changed)
    with mixed_precision(settings, image.device):
        both = net(torch.cat([image, changed]))
    original, of_changed = as_float_normals(both).chunk(2)
    if mirror:
        of_changed = mirrored_normals(of_changed)
    if warp:
        if mirror:  # the warp acted on the mirrored photo: move the original's map in that frame
            original = mirrored_normals(F.grid_sample(mirrored_normals(original), grid, align_corners=False))
        else:
            original = F.grid_sample(original, grid, align_corners=False)
        original = F.normalize(original, dim=1)
        valid = valid.flip(-1) if mirror else valid
    return losses.angular(of_changed, original, valid)


def train_coarse(model: FaceNormalNet, data: DownsampledPairs, settings: TrainSettings, log: Log,
                 stage: str, real: torch.Tensor | None = None, checkpoints: Checkpoints | None = None,
                 resume: dict | None = None) -> None:
    """`data` at the side the coarse network works at: it trains there, against downsampled truth;
    `real` photo crops at that side, for the consistency term."""
    coarse = model.coarse.train()
    for step, batch, optimizer in optimisation_steps(coarse, data, settings.coarse_batch,
                                                     settings.coarse_steps, settings.learning_rate,
                                                     seed=settings.seed, resume=resume):
        image, truth, valid = batch
        if settings.augment:
            image, truth, valid = augment.zoom_and_shift(augment.photometric(image), truth, valid)
        # Shape only: the exemplar is meant to be coarse, and at 128^2 the skin relief is noise
        # to it (a gradient term here slowed learning the shape in trials).
        with mixed_precision(settings):
            pred = coarse(image)
        angular = losses.angular(as_float_normals(pred), truth, valid)
        loss = angular
        row = dict(stage=stage, step=step, angular=angular.item())
        if real is not None and step % settings.consistency_every == 0:
            picks = real[torch.randint(0, len(real), (settings.coarse_batch,))].float() / 255
            same = consistency(coarse, picks, settings)
            loss = loss + settings.consistency_weight * same
            row["consistency"] = same.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        log(loss=loss.item(), **row)
        if checkpoints and (step + 1) % checkpoints.every == 0:
            checkpoints.save(stage, step, model, optimizer)


def random_crops(size: int, *tensors: torch.Tensor) -> list[torch.Tensor]:
    height, width = tensors[0].shape[-2:]
    y = int(torch.randint(0, height - size + 1, ()))
    x = int(torch.randint(0, width - size + 1, ()))
    return [t[..., y:y + size, x:x + size] for t in tensors]


def train_refine(model: FaceNormalNet, data: RenderedPairs, photos: torch.Tensor | None,
                 settings: TrainSettings, log: Log, checkpoints: Checkpoints | None = None,
                 resume: dict | None = None) -> None:
    """`photos`: real crops (uint8, at the model's input size) for the unpaired terms."""
    model.coarse.eval()
    for p in model.coarse.parameters():
        p.requires_grad_(False)
    refine = model.refine.train()
    for step, batch, optimizer in optimisation_steps(refine, data, settings.refine_batch,
                                                     settings.refine_steps, settings.learning_rate,
                                                     seed=settings.seed + 1, resume=resume):
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
            same = consistency(model, real, settings)
            loss = loss + settings.unpaired_weight * unpaired + settings.consistency_weight * same
            row["unpaired"] = unpaired.item()
            row["consistency"] = same.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        log(**row)
        if checkpoints and (step + 1) % checkpoints.every == 0:
            checkpoints.save("refine", step, model, optimizer)


def augment_photos(photos: torch.Tensor, count: int) -> torch.Tensor:
    """A batch of real crops (uint8), each mirrored at random and under a new exposure, white
    balance and gamma (the renders' photometric augmentation)."""
    picks = photos[torch.randint(0, len(photos), (count,))].float() / 255
    mirror = torch.rand(count) < 0.5
    picks = torch.where(mirror.view(-1, 1, 1, 1), picks.flip(-1), picks)
    return augment.photometric(picks)


def load_photo_crops(paths: list[Path], size: int) -> torch.Tensor:
    """(N, 3, size, size) uint8: each face's crop and head-and-shoulders crop, as the pipeline
    cuts them, from the photos."""
    from ..estimator import geometry
    from ..estimator.detection import FaceDetector
    from ..estimator.image_io import ImageError, read_image

    detector, crops = FaceDetector(), []
    for path in paths:
        try:
            image = read_image(path)
        except ImageError as error:
            logger.warning("skipping %s", error)
            continue
        for face in detector.detect(image):
            for crop in (geometry.crop_for_face(face), geometry.crop_for_person(face)):
                crops.append(np.round(geometry.cut_crop(image, crop, size) * 255).astype(np.uint8))
    if not crops:
        raise TrainingDataError(f"no faces found in the {len(paths)} real photos")
    logger.info("unpaired path: %d crops from %d photos", len(crops), len(paths))
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def real_photo_paths(photos: Path | None, portraits: Path | None) -> list[Path]:
    """Every photo of the `photos` folder, and the training side of the portrait split."""
    from ..core.files import expand_inputs
    from .portraits import portrait_split

    paths = [Path(p) for p in expand_inputs([str(photos)])] if photos else []
    if portraits:
        paths += portrait_split(portraits)[0]
    return paths


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
          config: ModelConfig = ModelConfig(), coarse_from: Path | None = None, *,
          portraits: Path | None = None, init: Path | None = None, resume: bool = False) -> dict:
    # Loaded first, so that a bad file fails before the rendering.
    source = load_model(coarse_from) if coarse_from is not None else None
    if source is not None:
        config = source.config
    start_from = load_model(init) if init is not None else None
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    output = output.with_suffix("")
    output.parent.mkdir(parents=True, exist_ok=True)
    checkpoints = Checkpoints(output.parent / f"{output.name}_checkpoint.pt", settings.checkpoint_every)
    saved = checkpoints.load() if resume else None
    if resume and saved is None:
        logger.info("no checkpoint at %s: starting from the beginning", checkpoints.path)
    log = Log(output.parent / f"{output.name}_log.jsonl", keep=saved is not None)
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
    paths = real_photo_paths(photos, portraits)
    real = load_photo_crops(paths, config.input_size) if paths else None
    real_small = None if real is None else (F.interpolate(
        real.float(), size=(config.coarse_size,) * 2, mode="area").round().to(torch.uint8))

    # channels-last convolutions train ~20% faster on the CPU; the weights are saved contiguous.
    model = build_model(config).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if start_from is not None:
        model.coarse.load_state_dict(start_from.coarse.state_dict())
    if saved is not None:
        model.load_state_dict(saved["model"])
        logger.info("resuming at %s step %d", saved["stage"], saved["step"] + 1)
    start = time.perf_counter()
    if source is not None:
        model.coarse.load_state_dict(source.coarse.state_dict())
    elif saved is None or saved["stage"] == "coarse":
        assert rags is not None
        train_coarse(model, rags, settings, log, "coarse", real_small, checkpoints, saved)
        saved = None
    timings["coarse"] = time.perf_counter() - start
    start = time.perf_counter()
    train_refine(model, everything, real, settings, log, checkpoints, saved)
    timings["refine"] = time.perf_counter() - start

    report = {"settings": dataclasses.asdict(settings), "config": config.to_dict(),
              "parameters": count_parameters(model), "timings_s": {k: round(v) for k, v in timings.items()},
              "machine": f"{platform.machine()}, {settings.threads} threads, torch {torch.__version__}",
              "command": " ".join(sys.argv), "unpaired_photos": str(photos) if photos else None,
              "portraits": str(portraits) if portraits else None, "real_crops": 0 if real is None else len(real),
              "coarse_from": str(coarse_from) if coarse_from else None, "init": str(init) if init else None,
              "resumed": resume}
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

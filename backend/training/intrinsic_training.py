"""v3 training: both sizes of the intrinsic model (estimator/models) in one run, on one device.

`python -m backend train --recipe gpu --inputs DIR --output OUTDIR [--resume]`:

1. renders its training set on every core (dataset.build_cache: image, normals, masks, albedo,
   SH light; the three framings) and moves it onto the device whole;
2. cuts the real portraits of the packed inputs (tools/pack_training_inputs.py) into face,
   head-and-shoulders and upper-body crops, as the pipeline would;
3. trains "quality" and "fast" step by step on the same batches (bf16 autocast on a GPU; fp32 on
   a CPU without bf16 units): supervised normals (angle + gradient), albedo (after one scale per
   channel) and light on renders; on real crops the photometric term (photo = albedo x
   shading(normals, light), robust), the exemplar guidance (the detail head keeps the trunk's
   low frequencies), edge-aware smoothness and consistency (mirror, shift, zoom, rescale, JPEG,
   colour); the fast model also learns from the quality model's outputs (distillation, its
   weight growing over the first half while the teacher improves);
4. evaluates both, beside the shipped 8th model, on held-out test people (intrinsic_evaluation.py)
   and writes to OUTDIR:
   fast.safetensors, quality.safetensors (fp16), per model <name>_checkpoint.pt (fp32 weights,
   step, random state) and <name>_moments.pt (Adam's moments in bf16, so each file stays under
   16 MB), log.jsonl and scores.json (recipe, timings per part, machine, scores): 8 files.

`--resume` continues from the checkpoints: batches are a function of the step, as in train.py.
The recipes' sizes and how the GPU one was sized from CPU timings: docs/training.md.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core import sh
from ..estimator import models
from ..estimator.models.intrinsic import IntrinsicNet
from . import augment, losses
from .dataset import FILES, TRUTH, build_cache
from .settings import TrainSettings
from .train import Log, TrainingDataError, batch_indices, consistency, learning_rate, mixed_precision

logger = logging.getLogger(__name__)
SIZES = ("quality", "fast")        # the order they step in: the fast one learns from the quality one
PORTRAITS = "portraits.npz"        # in the inputs folder: JPEG bytes and their offsets
MAX_FILE_BYTES = 16 * 2 ** 20


@dataclasses.dataclass
class Recipe:
    samples: int = 6000              # renders made on the machine (512^2: ~0.38 s of one core each)
    size: int = 512                  # render and crop side
    steps: int = 2500
    batch: int = 24
    learning_rate: float = 1e-3
    train_seconds: float = 330       # a guard: past this the run checkpoints and writes what it has
    gradient_weight: float = 0.2
    albedo_weight: float = 0.5
    light_weight: float = 0.2
    distil_weight: float = 0.5
    real_every: int = 2              # a batch of real crops every this many steps
    real_batch: int = 8
    photometric_weight: float = 0.1
    unpaired_weight: float = 0.1
    consistency_weight: float = 0.5
    checkpoint_every: int = 250
    test_people: int = 40
    bf16: bool = True
    seed: int = 0
    quality: dict = dataclasses.field(default_factory=dict)   # overrides of the sizes' configs
    fast: dict = dataclasses.field(default_factory=dict)


_TINY_NET = dict(input_size=64, widths=(8, 8, 16, 16, 16), attention_heads=2, detail_widths=(8, 8),
                 light_hidden=16)
RECIPES = {
    "gpu": Recipe(),
    # where no GPU is lent: 256^2 crops (the detail head at 256^2), bf16 where the CPU has it;
    # measured 4.4 s a step at one thread (docs/training.md): the guard stops it, --resume goes on
    "cpu": Recipe(size=256, steps=3000, batch=8, real_batch=4, train_seconds=6600,
                  quality=dict(input_size=256), fast=dict(input_size=256)),
    # the same code path in seconds on a CPU (the tests' smoke run)
    "tiny": Recipe(samples=8, size=64, steps=4, batch=2, real_every=2, real_batch=2, checkpoint_every=2,
                   test_people=2, train_seconds=600, quality=dict(_TINY_NET, base_size=64),
                   fast=dict(_TINY_NET, base_size=32, detail_stride=4)),
}


class RenderedTruth:
    """A render cache held whole on the device as it is stored (uint8, int16), decoded per batch."""

    def __init__(self, folder: Path, device: torch.device, chunk: int = 256):
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in FILES + TRUTH}
        self.count = len(arrays["images"])
        self.tensors = {}
        for name, array in arrays.items():
            tensor = torch.empty(array.shape, dtype=torch.from_numpy(array[:1].copy()).dtype, device=device)
            for start in range(0, self.count, chunk):   # copied chunk by chunk: the map is read-only
                tensor[start:start + chunk] = torch.from_numpy(np.array(array[start:start + chunk]))
            self.tensors[name] = tensor

    def __len__(self) -> int:
        return self.count

    def batch(self, items: torch.Tensor) -> dict[str, torch.Tensor]:
        """Float maps (B, C, H, W) of the items, each mirrored with probability 1/2."""
        t = {name: tensor[items.to(tensor.device)] for name, tensor in self.tensors.items()}
        masks = t["masks"][:, None]
        out = {"image": t["images"].permute(0, 3, 1, 2).float() / 255,
               "normals": t["normals"].permute(0, 3, 1, 2).float() / 32767,
               "albedo": losses.srgb_to_linear(t["albedo"].permute(0, 3, 1, 2).float() / 255),
               "face": (masks & 1).float(), "valid": ((masks >> 1) & 1).float(), "light": t["light"].float()}
        flip = (torch.rand(len(items)) < 0.5).to(out["image"].device)
        x_negated = torch.tensor([-1.0, 1.0, 1.0], device=flip.device).view(1, 3, 1, 1)
        signs = torch.from_numpy(sh.MIRROR_SIGNS).to(flip.device).view(1, 9, 1)
        for name in ("image", "normals", "albedo", "face", "valid"):
            mirrored = out[name].flip(-1) * (x_negated if name == "normals" else 1)
            out[name] = torch.where(flip.view(-1, 1, 1, 1), mirrored, out[name])
        out["light"] = torch.where(flip.view(-1, 1, 1), out["light"] * signs, out["light"])
        return out


def read_packed_portraits(path: Path) -> list[np.ndarray]:
    """The packed portraits (tools/pack_training_inputs.py) as RGB float images in [0, 1]."""
    import cv2

    packed = np.load(path)
    data, ends = packed["jpeg"], packed["ends"]
    images = []
    for start, end in zip(np.r_[0, ends[:-1]], ends):
        bgr = cv2.imdecode(data[start:end], cv2.IMREAD_COLOR)
        images.append(bgr[..., ::-1].astype(np.float32) / 255)
    return images


def real_crops(images: list[np.ndarray], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(face crops, head-and-shoulders and upper-body crops), uint8 (N, 3, size, size), cut
    around every face the detector finds, as the pipeline cuts them."""
    from ..estimator import geometry
    from ..estimator.detection import FaceDetector

    detector = FaceDetector()
    faces, others = [], []

    def cut(image, crop):
        return np.round(geometry.cut_crop(image, crop, size) * 255).astype(np.uint8)
    for image in images:
        for face in detector.detect(image):
            faces.append(cut(image, geometry.crop_for_face(face)))
            others += [cut(image, geometry.crop_for_person(face)), cut(image, geometry.crop_for_body(face))]
    if not faces:
        raise TrainingDataError(f"no faces found in the {len(images)} packed portraits")
    return (torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).contiguous(),
            torch.from_numpy(np.stack(others)).permute(0, 3, 1, 2).contiguous())


def pick_real(crops: torch.Tensor, count: int) -> torch.Tensor:
    """A batch of real crops, each mirrored at random, under a new exposure, balance and gamma."""
    picks = crops[torch.randint(0, len(crops), (count,)).to(crops.device)].float() / 255
    flip = (torch.rand(count) < 0.5).to(crops.device).view(-1, 1, 1, 1)
    return augment.photometric(torch.where(flip, picks.flip(-1), picks))


class Checkpoint:
    """Per model two files: <name>_checkpoint.pt (fp32 weights, step, random state) and
    <name>_moments.pt (the optimiser's state, its tensors in bf16)."""

    def __init__(self, folder: Path, name: str):
        self.weights = folder / f"{name}_checkpoint.pt"
        self.moments = folder / f"{name}_moments.pt"

    def save(self, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        state = optimizer.state_dict()
        state["state"] = {k: {n: v.to(torch.bfloat16).cpu() if v.is_floating_point() and v.dim() else v.cpu()
                              for n, v in s.items()} for k, s in state["state"].items()}
        self._write(self.moments, state)
        self._write(self.weights, {"step": step, "rng": torch.get_rng_state(),
                                   "model": {k: v.float().cpu() for k, v in model.state_dict().items()}})

    @staticmethod
    def _write(path: Path, value) -> None:
        partial = path.with_suffix(".partial")
        torch.save(value, partial)
        os.replace(partial, path)     # never a half-written checkpoint

    def load(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int | None:
        """The step the checkpoint finished (its state loaded), or None when there is none."""
        if not (self.weights.is_file() and self.moments.is_file()):
            return None
        saved = torch.load(self.weights, weights_only=False)
        model.load_state_dict(saved["model"])
        state = torch.load(self.moments, weights_only=False)
        state["state"] = {k: {n: v.float() if v.is_floating_point() and v.dim() else v for n, v in s.items()}
                          for k, s in state["state"].items()}
        optimizer.load_state_dict(state)
        torch.set_rng_state(saved["rng"])
        return int(saved["step"])


def supervised(out: dict[str, torch.Tensor], truth: dict[str, torch.Tensor], recipe: Recipe) -> dict:
    """The render terms: normals (angle and gradient), albedo and light."""
    valid = truth["valid"]
    normals = F.normalize(out["normals"].float(), dim=1)
    albedo = out["albedo"].float()
    scale = losses.channel_scale(albedo, truth["albedo"], valid)
    return {"angular": losses.angular(normals, truth["normals"], valid),
            "gradient": recipe.gradient_weight * losses.gradient(normals, truth["normals"], valid),
            "albedo": recipe.albedo_weight * losses.albedo(albedo, truth["albedo"], valid),
            "light": recipe.light_weight * losses.light(out["light"].float(), truth["light"], scale)}


def at_side(maps: dict[str, torch.Tensor], side: int) -> dict[str, torch.Tensor]:
    """A batch's maps (B, C, S, S) resampled to side x side (area; normals kept unit length), the
    light as it is."""
    resized = {}
    for name, value in maps.items():
        if value.dim() == 4 and value.shape[-1] != side:
            value = F.interpolate(value, size=(side, side), mode="area")
            value = F.normalize(value, dim=1) if "normals" in name else value
        resized[name] = value
    return resized


def distillation(out: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """The fast model's outputs against the quality model's (no gradient to the teacher)."""
    normals = F.normalize(out["normals"].float(), dim=1)
    albedo = (out["albedo"].float() - teacher["albedo"]).abs().mean(1, keepdim=True)
    light = (out["light"].float() - teacher["light"]).abs().mean() / teacher["light"][:, 0].abs().mean().clamp_min(1e-3)
    return losses.angular(normals, teacher["normals"], mask) + losses.masked_mean(albedo, mask) + light


def unpaired(model: IntrinsicNet, faces: torch.Tensor, others: torch.Tensor, oval: torch.Tensor,
             recipe: Recipe, settings: TrainSettings) -> dict:
    """The real-photo terms: photometric on the face crops' skin oval, exemplar guidance and
    smoothness on them, consistency on all the crops."""
    with mixed_precision(settings, faces.device):
        out = model(faces)
    normals = F.normalize(out["normals"].float(), dim=1)
    mask = oval.expand(len(faces), 1, *oval.shape[-2:])
    photometric = losses.photometric(faces, out["albedo"].float(), normals, out["light"].float(), mask)
    guided = (losses.exemplar_consistency(normals, F.normalize(out["coarse_normals"].float(), dim=1))
              + losses.edge_aware_smoothness(normals, faces))
    same = consistency(lambda x: model(x)["normals"], torch.cat([faces, others]), settings)
    return {"photometric": recipe.photometric_weight * photometric, "unpaired": recipe.unpaired_weight * guided,
            "consistency": recipe.consistency_weight * same}


def train_intrinsic(recipe_name: str, inputs: Path, output: Path, *, resume: bool = False,
                    device: str = "auto", workers: int | None = None, minutes: float | None = None) -> dict:
    """minutes: the training's time guard instead of the recipe's (0 with resume: the last
    checkpoints' weights are written and evaluated, no step is taken)."""
    from ..estimator import geometry
    from ..estimator.pipeline import pick_device
    from ..estimator.weights import DEFAULT_WEIGHTS
    from .intrinsic_evaluation import evaluate_models

    recipe = RECIPES[recipe_name]
    if minutes is not None:
        recipe = dataclasses.replace(recipe, train_seconds=60 * minutes)
    output.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    # Rendered before anything touches the GPU: the workers are forked.
    cache = build_cache(inputs, output.parent / f".{output.name}_renders", recipe.samples, size=recipe.size,
                        first_seed=recipe.seed * 1_000_000, workers=workers,
                        progress=lambda i, n: logger.info("rendered %d/%d", i, n) if i % 1000 == 0 else None)
    timings["render"] = time.perf_counter() - start
    target = pick_device(device)
    torch.manual_seed(recipe.seed)
    start = time.perf_counter()
    data = RenderedTruth(cache, target)
    timings["load"] = time.perf_counter() - start
    start = time.perf_counter()
    faces = others = None
    if (inputs / PORTRAITS).is_file():
        faces, others = (t.to(target) for t in real_crops(read_packed_portraits(inputs / PORTRAITS), recipe.size))
        logger.info("real crops: %d faces, %d wider", len(faces), len(others))
    timings["real_crops"] = time.perf_counter() - start
    oval = torch.from_numpy(geometry.face_mask(recipe.size)).to(target).view(1, 1, recipe.size, recipe.size)
    settings = TrainSettings(bf16=recipe.bf16)

    nets = {name: models.create_model(name, **getattr(recipe, name)).to(target) for name in SIZES}
    optimizers = {name: torch.optim.AdamW(net.parameters(), recipe.learning_rate, weight_decay=1e-4)
                  for name, net in nets.items()}
    checkpoints = {name: Checkpoint(output, name) for name in SIZES}
    done = [checkpoints[name].load(nets[name], optimizers[name]) for name in SIZES] if resume else []
    finished = [step for step in done if step is not None]
    first = min(finished) + 1 if finished and len(finished) == len(SIZES) else 0
    if resume and first == 0:
        logger.info("no checkpoint in %s: starting from the beginning", output)
    log = Log(output / "log.jsonl", keep=first > 0)
    step_seconds = {name: 0.0 for name in SIZES}
    start = time.perf_counter()
    last = first - 1
    for step in range(first, recipe.steps):
        if time.perf_counter() - start > recipe.train_seconds:
            logger.warning("stopped by the time guard at step %d of %d (--resume continues)", step, recipe.steps)
            break
        truth = data.batch(batch_indices(step, recipe.batch, len(data), recipe.seed))
        real = None
        if faces is not None and others is not None and step % recipe.real_every == 0:
            real = (pick_real(faces, recipe.real_batch), pick_real(others, recipe.real_batch))
        row: dict = {"step": step}
        teacher = None
        for name in SIZES:
            began = time.perf_counter()
            net, optimizer = nets[name].train(), optimizers[name]
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, recipe.steps, recipe.learning_rate)
            # a size that cuts its wider crops smaller (fast: wide_scale) sees every other batch at
            # that side, so its detail head learns the scale it runs them at
            side = net.config.wide_size if step % 2 else net.config.input_size
            seen = at_side(truth, side)
            with mixed_precision(settings, target):
                out = net(seen["image"])
            terms = supervised(out, seen, recipe)
            if teacher is not None:
                ramp = min(1.0, 2 * step / recipe.steps)
                terms["distil"] = recipe.distil_weight * ramp * distillation(out, at_side(teacher, side), seen["valid"])
            if real is not None:
                terms.update(unpaired(net, *real, oval, recipe, settings))
            loss = sum(terms.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()   # type: ignore[union-attr]
            optimizer.step()
            teacher = {k: v.detach().float() for k, v in out.items()}
            row.update({f"{name}_{k}": round(float(v.detach()), 5) for k, v in terms.items()})
            row[f"{name}_loss"] = round(float(loss.detach()), 5)   # type: ignore[union-attr]
            step_seconds[name] += time.perf_counter() - began
        log(**row)
        last = step
        if (step + 1) % recipe.checkpoint_every == 0:
            for name in SIZES:
                checkpoints[name].save(step, nets[name], optimizers[name])
    if last >= first:
        for name in SIZES:
            checkpoints[name].save(last, nets[name], optimizers[name])
    timings["train"] = time.perf_counter() - start
    timings.update({f"train_{name}": seconds for name, seconds in step_seconds.items()})

    report = {"recipe": recipe_name, "settings": dataclasses.asdict(recipe), "steps_done": last + 1,
              "resumed_at": first if resume else None,
              "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
                         f"{torch.cuda.get_device_name(target) if target.type == 'cuda' else 'cpu'}",
              "real_crops": 0 if faces is None else len(faces) + len(others)}  # type: ignore[arg-type]
    for name in SIZES:
        models.save_model(nets[name].eval(), output / f"{name}.safetensors", provenance=report)
    start = time.perf_counter()
    # the shipped 8th model in the same run, on the same renders: what v3 has to beat
    scores = evaluate_models({"shipped model": DEFAULT_WEIGHTS, **{name: output / f"{name}.safetensors"
                                                                   for name in SIZES}},
                             inputs, people=recipe.test_people, size=recipe.size, device=target, workers=workers)
    timings["evaluate"] = time.perf_counter() - start
    report.update(timings_s={k: round(v, 2) for k, v in timings.items()}, scores=scores)
    (output / "scores.json").write_text(json.dumps(report, indent=2))
    too_big = [p.name for p in output.iterdir() if p.stat().st_size > MAX_FILE_BYTES]
    if too_big:
        logger.warning("files over 16 MB: %s", too_big)
    return report


def checkpoint_bytes(model: torch.nn.Module) -> tuple[int, int]:
    """What a model's two checkpoint files hold, in bytes: fp32 weights, bf16 moments (two)."""
    count = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    return 4 * (count + buffers), 4 * count


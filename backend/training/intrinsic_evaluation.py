"""The v3 rows of `python -m backend evaluate`, on held-out test people rendered at `size`:

- normals: face (face crops' face mask), subject (head-and-shoulders crops' person) and body
  (upper-body crops' person) rows per model;
- sharpness: the true normals blurred by 2, 4, 8 and 16 px (Gaussian sigma, at 512^2; scaled
  to the render side) scored like a model, on the face rows: "as sharp as the truth blurred by N";
- albedo: error after one scale per channel, relative to the truth's mean, over the face; the
  lighting spread: each of `spread_people` people under `lights` lights, each albedo scaled to
  its own mean per channel, the mean over the face of its standard deviation across the lights;
  beside three baselines: the photo itself (linearised), a flat colour (the truth's mean) and a
  crude retinex (the photo over its blurred luminance);
- lighting: degrees between the predicted and the true light's dominant directions (baseline:
  a light from the camera);
- pigment: freckles and lipstick painted on (nothing else changed): degrees the normals move
  over the face;
- cost: per face (the crops `predict` cuts: face and head and shoulders, and for v3 the upper
  body; batch 1) in milliseconds, and crops per second at batch 8, on the evaluation's device.

Models without albedo and light (the 8th, `FaceNormalNet`) get the normal, sharpness, pigment and
cost rows, and their albedo and lighting rows come from the backend's fallback (estimator/
intrinsics.py: the light fitted to the photo from the model's normals, the photo divided by its
shading), named "<model> + fitted light"; the baselines stand in the albedo rows whatever is scored.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..core import sh
from ..estimator import intrinsics, models, pipeline
from ..estimator.networks import FaceNormalNet
from ..estimator.weights import load_model as load_normal_model
from .dataset import render_tests
from .evaluate import angular_errors
from .synthetic import Sample

BLURS = (2, 4, 8, 16)
FRAMINGS = {"face": "face", "person": "subject", "body": "body"}
Outputs = dict[str, np.ndarray]
Network = models.IntrinsicNet | FaceNormalNet


def load_any(path: Path, device: torch.device) -> Network:
    """A v3 model or, failing that format, a normals-only one (the 8th)."""
    from safetensors.torch import safe_open
    with safe_open(str(path), framework="pt") as handle:
        v3 = (handle.metadata() or {}).get("format") == models.FORMAT
    return models.load_model(path, device) if v3 else load_normal_model(path, device)


def runner(model: Network, device: torch.device) -> Callable[..., Outputs]:
    """run(image (S, S, 3), wide=False) -> {"normals", and for v3 models "albedo", "light"} as
    numpy at S.  The network sees the image at the side `predict` cuts that framing at: a
    normals-only model at its own input side, a v3 model at S, or for the wider framings
    (wide=True) at S x its wide_scale (the fast size's half); its maps are resized back."""
    @torch.inference_mode()
    def run(image: np.ndarray, wide: bool = False) -> Outputs:
        tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float().to(device)
        size = image.shape[0]
        if isinstance(model, FaceNormalNet):
            side = model.config.input_size
        else:
            side = round(size * model.config.wide_scale) if wide else size
        seen = tensor if side == size else F.interpolate(tensor, size=(side, side), mode="area")
        out = model(seen) if not isinstance(model, FaceNormalNet) else {"normals": model(seen)}

        def back(maps: torch.Tensor) -> np.ndarray:
            if side != size:
                maps = F.interpolate(maps.float(), size=(size, size), mode="bilinear", align_corners=False)
            return maps[0].permute(1, 2, 0).float().cpu().numpy()

        normals = back(out["normals"])      # unit again after the resize
        found = {"normals": normals / np.linalg.norm(normals, axis=-1, keepdims=True)}
        if "albedo" in out:
            found["albedo"], found["light"] = back(out["albedo"]), out["light"][0].float().cpu().numpy()
        return found
    return run


def blurred_normals(normals: np.ndarray, sigma: float) -> np.ndarray:
    blurred = cv2.GaussianBlur(normals, (0, 0), sigma)
    return blurred / np.maximum(np.linalg.norm(blurred, axis=-1, keepdims=True), 1e-8)


def linear(image: np.ndarray) -> np.ndarray:
    return np.where(image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4).astype(np.float32)


def retinex(image: np.ndarray, sigma: float) -> np.ndarray:
    """The photo over its blurred luminance: what is left of its colour without the slow light."""
    lin = linear(image)
    luminance = cv2.GaussianBlur(lin @ sh.LUMINANCE, (0, 0), sigma)
    return lin / np.maximum(luminance, 1e-3)[..., None]


def albedo_error(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    m = mask > 0.5
    p, t = pred[m], truth[m]
    scale = (p * t).sum(0) / np.maximum((p * p).sum(0), 1e-8)
    return float(np.abs(p * scale - t).mean() / max(float(t.mean()), 1e-6))


def with_fallback(out: Outputs, image: np.ndarray, mask: np.ndarray) -> Outputs:
    """A normals-only model's outputs with the backend's fitted light and albedo added."""
    if "albedo" in out:
        return out
    light = intrinsics.fit_light(image, out["normals"], mask > 0.5)
    return {**out, "albedo": intrinsics.albedo(image, out["normals"], light), "light": light.coefficients}


def named(name: str, out: Outputs, model: torch.nn.Module) -> str:
    return f"{name} + fitted light" if isinstance(model, FaceNormalNet) else name


def lighting_spread(albedos: list[np.ndarray], mask: np.ndarray) -> float:
    m = mask > 0.5
    scaled = np.stack([a[m] / np.maximum(a[m].mean(0), 1e-6) for a in albedos])
    return float(scaled.std(0).mean())


def baselines(sample: Sample, sigma: float) -> dict[str, np.ndarray]:
    m = sample.mask > 0.5
    flat = np.broadcast_to(sample.albedo[m].mean(0), sample.albedo.shape).astype(np.float32)
    return {"photo (baseline)": linear(sample.image), "flat colour (baseline)": flat,
            "retinex (baseline)": retinex(sample.image, sigma)}


def cost_rows(nets: dict[str, Network], device: torch.device, repeats: int = 5) -> list[dict]:
    """Per model, what `predict` runs per face (each framing's crop at its side: pipeline.crop_sides,
    batch 1) and crops per second of its face crops at batch 8."""
    rows = []
    for name, net in nets.items():

        @torch.inference_mode()
        def seconds(batch: int, side: int, net=net) -> float:
            x = torch.rand(batch, 3, side, side, device=device)
            net(x)
            times = []
            for _ in range(repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                net(x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            return float(np.median(times))
        sides = pipeline.crop_sides(net)
        per_face = sum(seconds(1, side) for side in sides)
        rows.append({"table": "cost", "name": name, "device": device.type, "crop_sides": list(sides),
                     "ms_per_face": round(per_face * 1000, 2),
                     "crops_per_s_batch8": round(8 / seconds(8, sides[0]), 1)})
    return rows


def evaluate_models(weights: dict[str, Path], data: Path, *, people: int = 40, size: int = 512,
                    device: torch.device = torch.device("cpu"), workers: int | None = None,
                    lights: int = 4, spread_people: int = 10) -> list[dict]:
    """The rows above (dicts with a "table" key) for the named weights files."""
    nets = {name: load_any(path, device) for name, path in weights.items()}
    run = {name: runner(net, device) for name, net in nets.items()}
    scale = size / 512
    spread_people = min(spread_people, people)
    jobs: list[tuple[int, str, int | None, bool]] = [
        (i, framing, None, False) for i in range(people) for framing in FRAMINGS]
    jobs += [(i, "face", None, True) for i in range(people)]
    jobs += [(i, "face", 7_500_000 + 100 * i + k, False) for i in range(spread_people) for k in range(lights)]
    samples = iter(render_tests(data, jobs, size, workers))
    normals: dict[tuple[str, str], list] = {}
    albedo: dict[str, list] = {}
    light: dict[str, list] = {}
    plain: dict[tuple[str, int], Outputs] = {}
    for i in range(people):
        for framing, region in FRAMINGS.items():
            sample = next(samples)
            mask = sample.mask if framing == "face" else sample.subject * sample.valid
            for name, method in run.items():
                out = method(sample.image, wide=framing != "face")
                normals.setdefault((name, region), []).append(angular_errors(out["normals"], sample.normals, mask))
                if framing != "face":
                    continue
                plain[(name, i)] = out
                fitted, label = with_fallback(out, sample.image, mask), named(name, out, nets[name])
                albedo.setdefault(label, []).append(albedo_error(fitted["albedo"], sample.albedo, mask))
                light.setdefault(label, []).append(float(sh.direction_error(fitted["light"], sample.light)))
            if framing == "face":
                for sigma in BLURS:
                    blurred = blurred_normals(sample.normals, sigma * scale)
                    normals.setdefault((f"truth blurred {sigma} px", "face"), []).append(
                        angular_errors(blurred, sample.normals, mask))
                for name, guess in baselines(sample, 16 * scale).items():
                    albedo.setdefault(name, []).append(albedo_error(guess, sample.albedo, mask))
                frontal = sh.project_light([0, 0, 1], [1, 1, 1])
                light.setdefault("light from the camera (baseline)", []).append(
                    float(sh.direction_error(frontal, sample.light)))
    rows = [{"table": "normals", "name": name, "region": region, "mean": float(np.concatenate(e).mean()),
             "median": float(np.median(np.concatenate(e)))} for (name, region), e in normals.items()]
    pigment: dict[str, list] = {}
    for i in range(people):
        sample = next(samples)
        for name, method in run.items():
            moved = angular_errors(method(sample.image)["normals"], plain[(name, i)]["normals"], sample.mask)
            pigment.setdefault(name, []).append(moved)
    rows += [{"table": "pigment", "name": name, "mean": float(np.concatenate(e).mean())} for name, e in pigment.items()]
    spread: dict[str, list] = {}
    for _ in range(spread_people):
        lit = [next(samples) for _ in range(lights)]
        mask = np.prod([s.mask for s in lit], axis=0)
        if (mask > 0.5).sum() < 16:
            continue
        guesses: dict[str, list] = {}
        for sample in lit:
            for name, guess in baselines(sample, 16 * scale).items():
                guesses.setdefault(name, []).append(guess)
            for name, method in run.items():
                out = method(sample.image)
                guesses.setdefault(named(name, out, nets[name]), []).append(
                    with_fallback(out, sample.image, sample.mask)["albedo"])
        for name, found in guesses.items():
            spread.setdefault(name, []).append(lighting_spread(found, mask))
    rows += [{"table": "albedo", "name": name, "error": float(np.mean(errors)),
              "lighting_spread": float(np.mean(spread[name])) if spread.get(name) else None}
             for name, errors in albedo.items()]
    rows += [{"table": "lighting", "name": name, "direction_error_mean": float(np.mean(e)),
              "direction_error_median": float(np.median(e))} for name, e in light.items()]
    return rows + cost_rows(nets, device)


def format_rows(rows: list[dict]) -> str:
    lines = []
    for table in ("normals", "albedo", "lighting", "pigment", "cost"):
        found = [r for r in rows if r["table"] == table]
        if found:
            lines.append(f"[{table}]")
            lines += ["  " + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in r.items() if k != "table") for r in found]
    return "\n".join(lines)

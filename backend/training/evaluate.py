"""Evaluation on the held-out test people: `python -m backend evaluate --data PATH`.

Renders the fixed list of test people (never trained on: their seeds lie apart) twice, as the
pipeline crops them: a face crop and a head-and-shoulders crop (training/synthetic.py's two
framings).  Every method runs on each 256^2 render as `predict` runs the networks (one pass);
the angular errors are pooled over the face masks of the face crops ("face" rows) and over the
whole person (head, hair, ears, neck, clothes, glasses, hands) of the head-and-shoulders crops
("subject" rows).  Methods: the shipped model, its coarse stage alone, the previous model, the
coarse network trained without attention when given (the paper's ablation), and two naive
baselines: flat (0, 0, 1) and the luminance-gradient heuristic that photo-to-normal-map tools
use.  Also saves a contact sheet to look at.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from collections.abc import Callable

import cv2
import numpy as np
import torch

from ..estimator.networks import FaceNormalNet, count_parameters
from ..estimator.weights import load_model
from .facekit import TEST_PEOPLE, FaceKit
from .synthetic import FaceRenderer, Sample

THRESHOLDS = (11.25, 22.5, 30.0)


def angular_errors(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Degrees between unit normals (H, W, 3) at the pixels where mask > 0.5."""
    cosine = np.clip(np.einsum("hwc,hwc->hw", pred, truth), -1.0, 1.0)
    return np.degrees(np.arccos(cosine[mask > 0.5]))


def summarize(name: str, errors: np.ndarray) -> dict:
    row = {"name": name, "mean": float(errors.mean()), "median": float(np.median(errors)),
           "rmse": float(np.sqrt((errors ** 2).mean()))}
    for key, limit in zip(("p11", "p22", "p30"), THRESHOLDS):
        row[key] = float((errors < limit).mean() * 100)
    return row


def flat_normals(image: np.ndarray) -> np.ndarray:
    normals = np.zeros_like(image)
    normals[..., 2] = 1
    return normals


def luminance_gradient_normals(image: np.ndarray, strength: float = 15.0, blur: float = 6.0) -> np.ndarray:
    """Brightness taken as height (the classic photo-to-normal-map filter): n ~ (-dh/dx, dh/dy, 1)
    with rows running down, so +y up is minus the row gradient.  strength and blur are the best of
    a grid (2-120, 1-6 px) on 24 training renders; no setting beat flat normals by more than 1 deg."""
    height = cv2.GaussianBlur(image.mean(-1).astype(np.float32), (0, 0), blur)
    dx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8
    dy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8
    normals = np.stack([-strength * dx, strength * dy, np.ones_like(dx)], -1)
    return normals / np.linalg.norm(normals, axis=-1, keepdims=True)


def network_method(model: FaceNormalNet, coarse_only: bool) -> Callable[[np.ndarray], np.ndarray]:
    """The network as `predict` runs it: one pass (every network row alike)."""
    net = model.coarse if coarse_only else model

    @torch.inference_mode()
    def predict(image: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        return net(tensor)[0].permute(1, 2, 0).numpy()
    return predict


@dataclasses.dataclass
class Report:
    rows: list[dict]
    parameters: int
    people: int


def evaluate(data: Path, weights: Path, ablation: Path | None, people: int = TEST_PEOPLE,
             sheet: Path | None = None, threads: int = 2, previous: Path | None = None) -> Report:
    torch.set_num_threads(threads)
    renderer = FaceRenderer(FaceKit(data))
    model = load_model(weights)
    methods = {"shipped model (refined)": network_method(model, coarse_only=False),
               "coarse stage alone": network_method(model, coarse_only=True)}
    if previous is not None:
        methods["previous model (refined)"] = network_method(load_model(previous), coarse_only=False)
    if ablation is not None:
        methods["coarse, no attention"] = network_method(load_model(ablation), coarse_only=True)
    methods["flat (0, 0, 1)"] = flat_normals
    methods["luminance gradient"] = luminance_gradient_normals

    errors: dict[tuple[str, str], list[np.ndarray]] = {}
    shown: list[tuple[Sample, np.ndarray, np.ndarray]] = []
    for index in range(people):
        for framing, region in (("face", "face"), ("person", "subject")):
            sample = renderer.test_sample(index, framing)
            mask = sample.mask if region == "face" else sample.subject * sample.valid
            for name, method in methods.items():
                pred = method(sample.image)
                errors.setdefault((name, region), []).append(angular_errors(pred, sample.normals, mask))
                if name == "shipped model (refined)" and len(shown) < 8 and index % 2 == (framing == "person"):
                    error_map = np.degrees(np.arccos(np.clip((pred * sample.normals).sum(-1), -1, 1)))
                    shown.append((sample, pred, error_map * (mask > 0.5)))
    rows = [{**summarize(name, np.concatenate(found)), "region": region}
            for (name, region), found in sorted(errors.items(), key=lambda item: item[0][1] != "face")]
    if sheet is not None:
        save_contact_sheet(shown, sheet)
    return Report(rows, count_parameters(model), people)


def save_contact_sheet(shown, path: Path, max_degrees: float = 30.0) -> None:
    """One row per face: image | truth | prediction | error (0 to 30 degrees, blue to red)."""
    rows = []
    for sample, pred, error in shown:
        heat = cv2.applyColorMap((np.clip(error / max_degrees, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
        heat = heat[..., ::-1].astype(np.float32) / 255 * (error > 0)[..., None]
        tiles = [sample.image, sample.normals * 0.5 + 0.5, pred * 0.5 + 0.5, heat]
        rows.append(np.concatenate(tiles, axis=1))
    sheet = np.concatenate(rows, axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), (np.clip(sheet, 0, 1)[..., ::-1] * 255).astype(np.uint8))


def format_table(report: Report) -> str:
    lines = [f"{report.people} held-out test people, 256x256, errors in degrees: over the face mask of "
             "face crops (face), over the whole person of head-and-shoulders crops (subject)",
             f"{'method':<26}{'region':>8}{'mean':>7}{'median':>8}{'rmse':>7}{'<11.25':>8}{'<22.5':>7}{'<30':>7}"]
    for row in report.rows:
        lines.append(f"{row['name']:<26}{row['region']:>8}{row['mean']:>7.2f}{row['median']:>8.2f}{row['rmse']:>7.2f}"
                     f"{row['p11']:>7.1f}%{row['p22']:>6.1f}%{row['p30']:>6.1f}%")
    lines.append(f"shipped model: {report.parameters:,} parameters")
    return "\n".join(lines)

"""Training losses.  Normals are (B, 3, H, W) unit vectors; masks (B, 1, H, W) in {0, 1}."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def angular(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean angle (radians) between predicted and true normals over the mask.  The angle itself,
    not 1 - cos (~angle^2 / 2): that one lets the few worst pixels outweigh the many nearly-right
    ones and trained to a worse mean and median in equal steps (20.4 vs 21.0 degrees mean)."""
    cosine = (pred * truth).sum(1, keepdim=True).clamp(-1 + 1e-6, 1 - 1e-6)
    return _masked_mean(torch.acos(cosine), mask)


def gradient(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 between the normals' spatial differences: rewards detail in the right places, and is
    counted only where both pixels of a difference lie inside the mask."""
    total = torch.zeros(())
    for dim in (-1, -2):
        d_pred, d_truth = torch.diff(pred, dim=dim), torch.diff(truth, dim=dim)
        both = mask.narrow(dim, 0, mask.shape[dim] - 1) * mask.narrow(dim, 1, mask.shape[dim] - 1)
        total = total + _masked_mean((d_pred - d_truth).abs().sum(1, keepdim=True), both)
    return total


def exemplar_consistency(refined: torch.Tensor, exemplar: torch.Tensor, scale: int = 8) -> torch.Tensor:
    """Unpaired photos: the refined map's low frequencies must agree with its exemplar (the
    refiner may add detail, not change the shape)."""
    low = F.normalize(F.avg_pool2d(refined, scale), dim=1)
    target = F.normalize(F.avg_pool2d(exemplar, scale), dim=1)
    return (1 - (low * target).sum(1)).mean()


def edge_aware_smoothness(normals: torch.Tensor, image: torch.Tensor, sharpness: float = 20.0) -> torch.Tensor:
    """Unpaired photos: where the image is smooth the normals should be too (skin is smooth where
    its shading is); image edges may carry normal detail."""
    gray = image.mean(1, keepdim=True)
    total = torch.zeros(())
    for dim in (-1, -2):
        d_normals = torch.diff(normals, dim=dim).abs().sum(1, keepdim=True)
        d_image = torch.diff(gray, dim=dim).abs()
        total = total + (d_normals * torch.exp(-sharpness * d_image)).mean()
    return total

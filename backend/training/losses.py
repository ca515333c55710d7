"""Training losses.  Normals are (B, 3, H, W) unit vectors; masks (B, 1, H, W) in {0, 1}."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core import sh


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def angular(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean angle (radians) between predicted and true normals over the mask.  The angle itself,
    not 1 - cos (~angle^2 / 2): that one lets the few worst pixels outweigh the many nearly-right
    ones and trained to a worse mean and median in equal steps (20.4 vs 21.0 degrees mean)."""
    cosine = (pred * truth).sum(1, keepdim=True).clamp(-1 + 1e-6, 1 - 1e-6)
    return masked_mean(torch.acos(cosine), mask)


def gradient(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 between the normals' spatial differences: rewards detail in the right places, and is
    counted only where both pixels of a difference lie inside the mask."""
    total = torch.zeros(())
    for dim in (-1, -2):
        d_pred, d_truth = torch.diff(pred, dim=dim), torch.diff(truth, dim=dim)
        both = mask.narrow(dim, 0, mask.shape[dim] - 1) * mask.narrow(dim, 1, mask.shape[dim] - 1)
        total = total + masked_mean((d_pred - d_truth).abs().sum(1, keepdim=True), both)
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


# --- v3: albedo, light and the photometric term (training/intrinsic_training.py) -------------

def channel_scale(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, 3, 1, 1) the scale per image and channel that brings pred closest to truth (least
    squares over the mask), without gradient: albedo and light are known up to it (a photo of
    albedo a under light L is the photo of 2a under L / 2)."""
    with torch.no_grad():
        numerator = (pred * truth * mask).sum((-2, -1), keepdim=True)
        return numerator / (pred * pred * mask).sum((-2, -1), keepdim=True).clamp_min(1e-6)


def albedo(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 between the scaled predicted albedo and the truth over the mask, relative to the
    truth's mean (so dark and light skins weigh alike)."""
    scale = channel_scale(pred, truth, mask)
    error = masked_mean((scale * pred - truth).abs().mean(1, keepdim=True), mask)
    return error / masked_mean(truth.mean(1, keepdim=True), mask).clamp_min(1e-3)


def light(pred: torch.Tensor, truth: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """L1 between predicted and true SH coefficients (B, 9, 3), the prediction divided by the
    albedo's scale per channel (B, 3, 1, 1), relative to the truth's constant term."""
    # s * albedo ~ the true albedo, and the photo is albedo * light, so light / s ~ the true light
    unscaled = pred / scale.view(-1, 1, 3).clamp_min(1e-3)
    size = truth[:, 0].abs().mean(-1).clamp_min(1e-3)
    return ((unscaled - truth).abs().mean((-2, -1)) / size).mean()


def shading(normals: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) irradiance at normals (B, 3, H, W) from SH lights (B, 9, 3): core/sh.py's."""
    terms = torch.stack(sh.basis_terms(normals[:, 0], normals[:, 1], normals[:, 2]), -1)  # B H W 9
    return torch.einsum("bhwk,bkc->bchw", terms, coefficients)


def srgb_to_linear(image: torch.Tensor) -> torch.Tensor:
    return torch.where(image <= 0.04045, image / 12.92, ((image.clamp_min(0) + 0.055) / 1.055) ** 2.4)


def photometric(image: torch.Tensor, albedo: torch.Tensor, normals: torch.Tensor, light: torch.Tensor,
                mask: torch.Tensor, spread: float = 0.1, eps: float = 1e-3) -> torch.Tensor:
    """Unpaired photos: the photo (sRGB) must be explained as albedo * shading(normals, light).
    The residual is a log ratio under a Cauchy loss log(1 + (r / spread)^2): large residuals grow only
    logarithmically, so highlights, cast shadows, hair and make-up
    that the model cannot explain pull little while the bulk of the skin decides.  0 at a
    perfect explanation."""
    residual = photometric_residual(image, albedo, normals, light, eps)
    return masked_mean(torch.log1p((residual / spread) ** 2).mean(1, keepdim=True), mask)


def photometric_residual(image: torch.Tensor, albedo: torch.Tensor, normals: torch.Tensor,
                         light: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """(B, 3, H, W) log(linear photo) - log(albedo * shading): 0 where the model explains it."""
    rendered = albedo * shading(normals, light).clamp_min(0)
    return torch.log(srgb_to_linear(image) + eps) - torch.log(rendered + eps)

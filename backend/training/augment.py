"""On-the-fly augmentation of rendered pairs, so a few thousand renders do not get memorised.

Each pass over the cache shows every render under a new exposure, white balance and gamma, and
zoomed and shifted a little.  Zoom and shift do not change view-space normals (the face turns
no differently), so the truth is only resampled; mirroring is the dataset's job."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def photometric(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) sRGB in [0, 1]: per image exposure and gamma, per channel gain."""
    b = image.shape[0]
    exposure = torch.exp(torch.randn(b, 1, 1, 1) * 0.2).to(image.device)
    balance = torch.exp(torch.randn(b, 3, 1, 1) * 0.05).to(image.device)
    gamma = torch.exp(torch.randn(b, 1, 1, 1) * 0.15).to(image.device)
    return (image * exposure * balance).clamp(1e-4, 1) ** gamma


def zoom_and_shift(image: torch.Tensor, normals: torch.Tensor, valid: torch.Tensor,
                   zoom: float = 0.1, shift: float = 0.08):
    """The same random zoom (1 +- zoom) and shift (+- shift of the side) of image, normals and
    valid mask; what comes in from outside the frame is not valid."""
    b = image.shape[0]
    scale = 1 + (torch.rand(b) * 2 - 1) * zoom
    offset = (torch.rand(b, 2) * 2 - 1) * shift * 2          # grid coordinates span [-1, 1]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = offset
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    image = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    normals = F.normalize(F.grid_sample(normals, grid, mode="bilinear", padding_mode="border",
                                        align_corners=False), dim=1)
    valid = (F.grid_sample(valid, grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False) > 0.99).float()
    return image, normals, valid


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] through a JPEG encoder and decoder at `quality` (no gradient: the
    codec is a change of the input, not part of the network)."""
    import cv2
    import numpy as np

    pixels = (image.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    decoded = [cv2.imdecode(cv2.imencode(".jpg", p[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1],
                            cv2.IMREAD_COLOR)[..., ::-1] for p in pixels]
    return torch.from_numpy(np.stack(decoded).copy()).permute(0, 3, 1, 2).to(image.device).float() / 255

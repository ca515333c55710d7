"""Who in a photo is a person: MediaPipe's selfie segmentation model, run in PyTorch (graph_module.py).

As MediaPipe's selfie_segmentation_cpu.pbtxt (mediapipe/modules/selfie_segmentation) does it: the
whole photo stretched to the model's 256x256 (keep_aspect_ratio: false, so no letterbox), values
in [0, 1]; the model ends in a sigmoid (activation NONE after it), and its 256x256 mask is
resized bilinearly back to the photo's size.  MediaPipe made it for "the prominent humans in the scene"
close (< 2 m) to the camera: selfies and video calls (docs/solutions/selfie_segmentation.md).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from .graph_module import GraphModule

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
SEGMENTATION_FILE, SEGMENTATION_SIZE = "selfie_segmentation.safetensors", 256


def _to_model(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) in [0, 1] -> (256, 256, 3) in [0, 1], as MediaPipe's ImageToTensorCalculator makes
    it on the CPU: the photo in 8 bits, its corners (pixel edges, not centres) warped onto the
    square's by cv2.warpPerspective.  In 8 bits on purpose: the model's mask moved by up to 0.2 at
    uncertain edges (skimage's cat) for the rounding of a float warp, so only this one gives
    MediaPipe's mask (to 1e-4)."""
    height, width = image.shape[:2]
    size = SEGMENTATION_SIZE
    pixels = cv2.convertScaleAbs(image, alpha=255)  # rounds and saturates to uint8
    if (height, width) != (size, size):
        corners = np.array([[0, height], [0, 0], [width, 0], [width, height]], np.float32)
        square = np.array([[0, size], [0, 0], [size, 0], [size, size]], np.float32)
        pixels = cv2.warpPerspective(pixels, cv2.getPerspectiveTransform(corners, square), (size, size),
                                     flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return pixels.astype(np.float32) / 255


def _check(images: np.ndarray, rank: int) -> np.ndarray:
    if images.ndim != rank or images.shape[-1] != 3 or 0 in images.shape:
        raise ValueError(f"expected an RGB image array of {rank} dimensions ending in 3, got shape {images.shape}")
    return np.ascontiguousarray(images, dtype=np.float32)


class PersonSegmenter:
    """Soft person masks (1 on a person, 0 elsewhere) of RGB float photos in [0, 1]."""

    def __init__(self, device: str | torch.device = "cpu", weights: Path = WEIGHTS):
        self.device = torch.device(device)
        self.model = GraphModule.load(Path(weights) / SEGMENTATION_FILE).to(self.device)

    @torch.inference_mode()
    def _masks(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 256, 256, 3) in [0, 1] -> (N, 256, 256) masks."""
        tensor = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(self.device)
        (mask,) = self.model(tensor)
        return mask[..., 0].float().cpu().numpy()

    def segment(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) float RGB in [0, 1], any size and aspect -> (H, W) float32 mask in [0, 1]."""
        image = _check(image, 3)
        height, width = image.shape[:2]
        mask = self._masks(_to_model(image)[None])[0]
        return cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)

    def segment_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) square crops -> (N, S, S) masks, the model run once on the batch."""
        crops = _check(crops, 4)
        size = crops.shape[1]
        if crops.shape[2] != size:
            raise ValueError(f"expected square crops, got shape {crops.shape}")
        masks = self._masks(np.stack([_to_model(crop) for crop in crops]))
        if size == SEGMENTATION_SIZE:
            return masks
        return np.stack([cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR) for m in masks])

"""The coarse network's augmentation: image, normals and mask stay aligned; photometric changes
stay photos."""
import torch
import torch.nn.functional as F

from backend.training import augment


def test_zoom_and_shift_move_image_normals_and_mask_together():
    torch.manual_seed(0)
    normals = F.normalize(F.avg_pool2d(torch.randn(4, 3, 32, 32), 5, 1, 2), dim=1)
    image = normals * 0.5 + 0.5                                      # the image shows the normals
    valid = torch.ones(4, 1, 32, 32)
    moved_image, moved_normals, moved_valid = augment.zoom_and_shift(image, normals, valid, 0.1, 0.1)
    assert not torch.allclose(moved_normals, normals, atol=1e-2)    # something moved
    inside = moved_valid > 0
    # the resampled image still encodes the resampled normals, pixel for pixel
    decoded = F.normalize(moved_image * 2 - 1, dim=1)
    assert (decoded - moved_normals).norm(dim=1, keepdim=True)[inside].max() < 1e-4
    assert torch.allclose(moved_normals.norm(dim=1), torch.ones(4, 32, 32), atol=1e-4)
    assert 0.5 < moved_valid.mean() < 1.0                              # the edges came from outside


def test_photometric_changes_stay_in_range_and_differ_per_image():
    torch.manual_seed(0)
    image = torch.rand(8, 3, 16, 16)
    changed = augment.photometric(image)
    assert changed.shape == image.shape and changed.min() >= 0 and changed.max() <= 1
    gains = (changed.mean((1, 2, 3)) / image.mean((1, 2, 3)))
    assert gains.std() > 0.02

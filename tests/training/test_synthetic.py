import numpy as np
import pytest

from backend.training.facekit import TEST_SEED, FaceKit, FaceKitError, held_out_person, training_person
from backend.training.synthetic import FaceRenderer


@pytest.fixture(scope="module")
def renderer(tiny_facekit):
    return FaceRenderer(FaceKit(tiny_facekit), size=128)


def test_a_sample_is_an_image_unit_normals_and_masks(renderer):
    sample = renderer.training_sample(3)
    assert sample.image.shape == (128, 128, 3) and sample.image.dtype == np.float32
    assert 0 <= sample.image.min() and sample.image.max() <= 1
    assert np.allclose(np.linalg.norm(sample.normals, axis=-1), 1, atol=1e-4)
    assert set(np.unique(sample.mask)) <= {0.0, 1.0} and sample.mask.sum() > 100
    assert (sample.valid >= sample.mask).all() or sample.valid.sum() >= sample.mask.sum() * 0.9


def test_normals_follow_the_opengl_camera_convention(renderer):
    """On a sphere, camera-space normals point right on the right, up at the top, toward the
    viewer everywhere visible: x grows with the column, y falls with the row, z > 0."""
    for seed in range(4):
        sample = renderer.training_sample(seed)
        rows, cols = np.nonzero(sample.valid > 0)
        n = sample.normals[rows, cols]
        assert np.corrcoef(cols, n[:, 0])[0, 1] > 0.8
        assert np.corrcoef(rows, n[:, 1])[0, 1] < -0.8
        assert np.percentile(n[:, 2], 2) > 0


def test_skin_relief_reaches_the_ground_truth(renderer):
    """The relief bends the true normals: they are not the smooth sphere's, but close to them."""
    sample = renderer.training_sample(5)
    inner = sample.mask > 0
    n = sample.normals
    # second differences of a smooth sphere's normals are tiny; relief makes them larger
    curvature = np.abs(n[2:, 1:-1] - 2 * n[1:-1, 1:-1] + n[:-2, 1:-1]).sum(-1)[inner[1:-1, 1:-1]]
    assert np.percentile(curvature, 90) > 0.01


def test_samples_are_deterministic_per_seed(renderer):
    a, b, c = renderer.training_sample(11), renderer.training_sample(11), renderer.training_sample(12)
    for name in ("image", "normals", "mask", "valid"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.image, c.image)


def test_test_people_are_fixed_and_apart_from_training_seeds(tiny_facekit):
    kit = FaceKit(tiny_facekit)
    first, seed = held_out_person(kit, 0)
    again, _ = held_out_person(kit, 0)
    assert np.array_equal(first.identity, again.identity) and seed >= TEST_SEED
    with pytest.raises(ValueError, match="test people"):
        training_person(kit, TEST_SEED)
    far = np.mean([np.abs(held_out_person(kit, i)[0].identity).mean() for i in range(190, 200)])
    near = np.mean([np.abs(held_out_person(kit, i)[0].identity).mean() for i in range(10)])
    assert far > 1.8 * near   # the last fifth lie at 2-3 sigma


def test_a_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FaceKitError, match="ict_facekit"):
        FaceKit(tmp_path)

import pytest
import torch

from backend.estimator.networks import (ModelConfig, build_model, count_macs, count_parameters,
                                        mirror_averaged)

PARAMETER_BUDGET = 8_000_000
MAC_BUDGET = 5_000_000_000


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model().eval()


def test_output_is_unit_normals_at_input_size(model):
    image = torch.rand(2, 3, 256, 256)
    with torch.no_grad():
        exemplar = model.coarse(image)
        fine = model.refine(image, exemplar)
    for normals in (exemplar, fine):
        assert normals.shape == (2, 3, 256, 256)
        assert torch.allclose(normals.norm(dim=1), torch.ones(2, 256, 256), atol=1e-4)


def test_within_parameter_and_compute_budget(model):
    parameters = count_parameters(model)
    macs = count_macs(model, torch.rand(1, 3, 256, 256))
    assert parameters <= PARAMETER_BUDGET
    assert macs <= MAC_BUDGET
    # The counter must see the networks' real work, not a fraction of it: a 3x3 convolution from
    # 16 to 16 channels at 256^2 alone is 151M MACs and the full-resolution stages have several.
    assert macs > 1_000_000_000


def test_mac_counter_on_a_known_layer():
    layer = torch.nn.Conv2d(4, 8, 3, padding=1)
    assert count_macs(layer, torch.rand(1, 4, 10, 10)) == 10 * 10 * 8 * 4 * 9


def test_eval_mode_is_deterministic(model):
    image = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        assert torch.equal(model(image), model(image))


def test_mirror_average_treats_a_photo_and_its_mirror_alike(model):
    """The mirror image of a face gets the mirror image of its normals (x negated): exactly, which
    a single pass of a network does not do."""
    image = torch.rand(1, 3, 256, 256)
    x_negated = torch.tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        direct = mirror_averaged(model, image)
        of_mirror = mirror_averaged(model, image.flip(-1))
        single_pass_gap = (model(image.flip(-1)) - model(image).flip(-1) * x_negated).abs().max()
    assert torch.allclose(of_mirror, direct.flip(-1) * x_negated, atol=1e-5)
    assert single_pass_gap > 1e-3
    assert torch.allclose(direct.norm(dim=1), torch.ones(1, 256, 256), atol=1e-4)


def test_refinement_uses_the_exemplar(model):
    image = torch.rand(1, 3, 256, 256)
    exemplar = model.coarse(image)
    flipped = exemplar * torch.tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert not torch.allclose(model.refine(image, exemplar), model.refine(image, flipped))


def test_attention_mixes_every_bottleneck_position():
    """Self-attention gives each bottleneck cell a view of the whole face: changing one corner
    cell changes the opposite corner's output, which no 3x3 convolution at that stage could do."""
    torch.manual_seed(0)
    attention = build_model().coarse.unet.bottleneck.eval()
    _, dim, grid, _ = attention.position.shape
    features = torch.randn(1, dim, grid, grid)
    changed = features.clone()
    changed[..., 0, 0] += torch.randn(dim)
    with torch.no_grad():
        far = attention(features)[..., -1, -1] - attention(changed)[..., -1, -1]
    assert far.abs().max() > 1e-3


def test_no_attention_variant_builds_and_is_smaller():
    plain = build_model(ModelConfig(attention_blocks=0))
    assert count_parameters(plain) < count_parameters(build_model())
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in plain.modules())


def test_config_round_trip_rejects_unknown_keys():
    config = ModelConfig(attention_blocks=1)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown model settings"):
        ModelConfig.from_dict({"depth": 3})


def test_mac_counter_on_a_transposed_convolution():
    layer = torch.nn.ConvTranspose2d(4, 8, 4, stride=2, padding=1)
    assert count_macs(layer, torch.rand(1, 4, 10, 10)) == 10 * 10 * 4 * 8 * 16

"""The numpy reference of the relighting model against cases whose answer is known analytically."""
import numpy as np
import pytest

from helpers import sphere_normals
from shaders import relight as model

GREY = 0.5


def _sphere_lit(lights, size=65, **settings):
    """A mid-grey sphere photo relit with no ambient and no de-lighting unless told; returns the
    relit linear values (size, size, 3), the normals and the inside mask."""
    normals, inside = sphere_normals(size)
    photo = np.full((size, size, 3), GREY, np.float32)
    settings = {"sh": np.zeros((9, 3)), "delight": 0.0, "specular": 0.0, **settings}
    relit = model.relight(photo, normals * 0.5 + 0.5, model.Lighting(lights, **settings))
    return model.srgb_to_linear(relit), normals, inside


def test_a_sphere_lit_from_plus_x_is_brightest_at_its_plus_x_rim_and_black_facing_away():
    linear, normals, inside = _sphere_lit([model.Light((1, 0, 0), intensity=0.8)])
    brightness = np.where(inside, linear[..., 0], -1)
    brightest = np.unravel_index(np.argmax(brightness), brightness.shape)
    assert normals[brightest][0] > 0.95
    away = inside & (normals[..., 0] < 0)
    assert away.sum() > 1000 and np.all(linear[away] == 0)
    # Lambert: inside the sphere, linear value = albedo * n.l (albedo = the photo's linear grey).
    albedo = model.srgb_to_linear(np.float32(GREY))
    facing = inside & (normals[..., 0] > 0)
    assert np.allclose(linear[facing, 1], albedo * 0.8 * normals[facing, 0], atol=2e-3)


def test_energy_scales_with_intensity_and_exposure():
    dim, _, inside = _sphere_lit([model.Light((0.3, 0.4, 0.8), intensity=0.4)])
    bright, _, _ = _sphere_lit([model.Light((0.3, 0.4, 0.8), intensity=0.8)])
    exposed, _, _ = _sphere_lit([model.Light((0.3, 0.4, 0.8), intensity=0.4)], exposure=1.0)
    lit = inside & (dim[..., 0] > 0.01)
    assert np.allclose(bright[lit], 2 * dim[lit], rtol=0.01, atol=2e-3)
    assert np.allclose(exposed[lit], bright[lit], atol=1e-4)


def test_light_colour_tints_only_its_own_channels():
    linear, _, inside = _sphere_lit([model.Light((0, 0, 1), colour=(1, 0, 0))])
    assert linear[inside, 0].mean() > 0.1 and linear[inside, 1:].max() == 0


def test_two_lights_add_up():
    left, _, _ = _sphere_lit([model.Light((-1, 0, 0.3), intensity=0.3)])
    right, _, _ = _sphere_lit([model.Light((1, 0.2, 0.3), intensity=0.3)])
    both, _, _ = _sphere_lit([model.Light((-1, 0, 0.3), intensity=0.3), model.Light((1, 0.2, 0.3), intensity=0.3)])
    assert np.allclose(both, left + right, atol=2e-3)


def test_uniform_ambient_lights_every_normal_alike_and_from_above_favours_up():
    ambient = model.ambient_sh((1, 1, 1), 0.5)
    linear, normals, inside = _sphere_lit([], sh=ambient)
    albedo = model.srgb_to_linear(np.float32(GREY))
    assert np.allclose(linear[inside], albedo * 0.5, atol=2e-3)
    graded, _, _ = _sphere_lit([], sh=model.ambient_sh((1, 1, 1), 0.5, from_above=1.0))
    assert np.allclose(graded[inside, 0], albedo * 0.5 * (1 + normals[inside, 1]), atol=3e-3)


def test_the_specular_highlight_sits_where_the_normal_is_the_half_vector():
    light = np.array([0.6, 0.0, 0.8])
    linear, normals, inside = _sphere_lit([model.Light(tuple(light), intensity=0.2)], specular=1.0,
                                          roughness=0.2)
    diffuse_only, _, _ = _sphere_lit([model.Light(tuple(light), intensity=0.2)])
    highlight = np.where(inside, (linear - diffuse_only)[..., 0], -1)
    peak = np.unravel_index(np.argmax(highlight), highlight.shape)
    half = (light + [0, 0, 1]) / np.linalg.norm(light + [0, 0, 1])
    assert np.degrees(np.arccos(np.clip(normals[peak] @ half, -1, 1))) < 3
    rougher, _, _ = _sphere_lit([model.Light(tuple(light), intensity=0.2)], specular=1.0, roughness=0.6)
    assert (rougher - diffuse_only)[peak][0] < highlight[peak]          # a rougher highlight spreads


def test_delight_divides_a_frontal_shading_estimate_out_of_the_photo():
    """A photo shaded by the model's own frontal estimate, de-lit fully and relit frontally with
    the same shape, comes back as itself."""
    normals, inside = sphere_normals(64)
    albedo = 0.4
    original = 0.3 + 0.7 * np.clip(normals[..., 2:3], 0, None)
    photo = model.linear_to_srgb(np.repeat(albedo * original, 3, -1))
    frontal = model.Lighting([model.Light((0, 0, 1), intensity=0.7)], sh=model.ambient_sh((1, 1, 1), 0.3),
                             delight=1.0, specular=0.0)
    relit = model.relight(photo, normals * 0.5 + 0.5, frontal)
    assert np.abs(relit - photo)[inside].max() < 1e-3


def test_an_albedo_is_lit_as_a_renderer_lights_it_whatever_the_photo():
    """albedo * (ambient + n.l): the photo's own (baked-in) light plays no part; without the
    albedo the photo, de-lit by the guess, is what is lit."""
    normals, inside = sphere_normals(48)
    albedo = np.full((48, 48, 3), [0.5, 0.3, 0.2], np.float32)
    lighting = model.Lighting([model.Light((0, 0, 1))], sh=model.ambient_sh((1, 1, 1), 0.25), specular=0.0)
    for photo in (np.zeros((48, 48, 3), np.float32), np.ones((48, 48, 3), np.float32)):
        linear = model.srgb_to_linear(model.relight(photo, normals * 0.5 + 0.5, lighting, albedo=albedo))
        expected = albedo * (0.25 + np.clip(normals[..., 2:3], 0, None))
        assert np.abs(linear - expected)[inside].max() < 2e-3
    dark = model.relight(np.zeros((48, 48, 3), np.float32), normals * 0.5 + 0.5, lighting)
    assert dark.max() == 0


def test_a_black_shirt_stays_black_under_the_default_lights():
    """The washed-out look (issue 30): with the defaults, a dark albedo facing the light gains no
    white lobe on top (the photo holds its own highlights)."""
    normals, inside = sphere_normals(48)
    black = np.full((48, 48, 3), 0.0025, np.float32)                 # sRGB ~ 7/255
    relit = model.relight(np.zeros((48, 48, 3), np.float32), normals * 0.5 + 0.5,
                          model.Lighting([model.Light((0.3, 0.3, 0.9))]), albedo=black)
    assert relit[inside].max() * 255 < 12


def test_the_mask_keeps_the_photo_outside_it():
    normals, inside = sphere_normals(32)
    photo = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    lighting = model.Lighting([model.Light((1, 0, 0), intensity=3.0)])
    relit = model.relight(photo, normals * 0.5 + 0.5, lighting, mask=inside.astype(np.float32))
    assert np.array_equal(relit[~inside], photo[~inside])
    assert not np.allclose(relit[inside], photo[inside])


def test_more_than_four_lights_is_refused():
    with pytest.raises(ValueError, match="at most 4"):
        model.Lighting([model.Light((0, 0, 1))] * 5)


def test_uniforms_hold_unit_directions_and_black_unused_lights():
    block = model.pack_uniforms(model.Lighting([model.Light((3, 0, 4), (1, 0.5, 0), 2.0)], exposure=1.0))
    assert block.shape == (2 * model.MAX_LIGHTS + 9 + 1, 4) and block.dtype == np.float32
    assert np.allclose(block[0, :3], [0.6, 0, 0.8])
    assert np.allclose(block[model.MAX_LIGHTS, :3], [2, 1, 0])
    assert not block[model.MAX_LIGHTS + 1:2 * model.MAX_LIGHTS].any()
    assert block[-1, 3] == 2.0

"""The relighting model of the preview, in numpy: the reference for relight.frag.glsl.

Both compute, per pixel, from a photo (sRGB-encoded, as displayed), its camera-space normal map
(RGB = n * 0.5 + 0.5, OpenGL convention: +x right, +y up, +z toward the viewer), its face mask
and, when the estimator made one, its albedo (linear RGB, the photo with its own light divided out):

    albedo   = the albedo map, when given; else (the fallback, for photos estimated without one)
               linear(photo) / original     original = 1 - delight + delight * (0.3 + 0.7 max(n.z, 0))
                                             (a frontal-light shading estimate divided out, delight in [0, 1])
    diffuse  = max(SH(n), 0) + sum_i colour_i * max(n.l_i, 0)         (SH: 9 RGB coefficients of the radiance,
                                                                 convolved to irradiance, Ramamoorthi-Hanrahan)
    specular = sum_i colour_i * specular * (e + 8) / (8 pi) * max(n.h_i, 0)^e * max(n.l_i, 0)
               h_i = normalize(l_i + v), v = (0, 0, 1), e = 2 / max(roughness, 0.05)^4 - 2   (Blinn-Phong)
    relit    = srgb(clamp((albedo * diffuse + specular) * 2^exposure, 0, 1))
    out      = photo + mask * (relit - photo)

colour_i is a light's colour times its intensity; up to MAX_LIGHTS lights (unused ones are black).
The SH term is the ambient light, to which a caller may add the photo's own fitted light (the
estimator's `light`, same coefficients) as a fill: `Lighting.sh = ambient_sh(...) + fill * light`.
Everything is float32.  `pack_uniforms` lays the parameters out as the shader's uniform block
(std140, all vec4) so Python callers fill the GLSL side from the same `Lighting`.  No torch and no
Blender here: the backend (demo) and Blender's Python (the add-on's headless bake) both import it.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

MAX_LIGHTS = 4
# Key-light directions the demo and the README's pictures relight portraits with
SHOWCASE_LIGHTS = {"left": (-0.8, 0.2, 0.55), "above": (0.0, 0.8, 0.6), "right": (0.8, 0.2, 0.55)}
SH_COEFFICIENTS = 9
# Ramamoorthi and Hanrahan's irradiance convolution constants.
C1, C2, C3, C4, C5 = 0.429043, 0.511664, 0.743125, 0.886227, 0.247708


@dataclasses.dataclass
class Light:
    direction: tuple[float, float, float]          # toward the light, camera space; normalised here
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    intensity: float = 1.0


@dataclasses.dataclass
class Lighting:
    lights: list[Light]
    sh: np.ndarray = dataclasses.field(default_factory=lambda: ambient_sh((1.0, 1.0, 1.0), 0.3))
    delight: float = 0.7        # how much of the frontal-shading estimate is divided out of the photo
    specular: float = 0.0       # the photo holds its own highlights (docs/relighting.md)
    roughness: float = 0.5
    exposure: float = 0.0       # stops

    def __post_init__(self):
        if len(self.lights) > MAX_LIGHTS:
            raise ValueError(f"at most {MAX_LIGHTS} lights, got {len(self.lights)}")
        self.sh = np.asarray(self.sh, np.float32).reshape(SH_COEFFICIENTS, 3)


def ambient_sh(colour, strength: float, from_above: float = 0.0) -> np.ndarray:
    """SH coefficients (9, 3) of an ambient light whose irradiance is colour * strength on a surface
    facing the camera, times (1 + from_above * n.y): 0 is uniform, 1 leaves downward faces dark."""
    coefficients = np.zeros((SH_COEFFICIENTS, 3), np.float32)
    base = np.asarray(colour, np.float32) * strength
    coefficients[0] = base / C4                    # irradiance = C4 * L00 = strength
    coefficients[1] = base * from_above / (2 * C2)  # the y term: irradiance strength * (1 + from_above * y)
    return coefficients


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    values = np.clip(values, 0.0, 1.0)
    return np.where(values <= 0.0031308, values * 12.92,
                    1.055 * np.power(values, 1 / 2.4) - 0.055).astype(np.float32)


def sh_irradiance(normals: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """Irradiance (..., 3) at unit normals (..., 3) from SH radiance coefficients (9, 3); the
    coefficients are ordered L00, L1-1 (y), L10 (z), L11 (x), L2-2 (xy), L2-1 (yz), L20, L21 (xz), L22."""
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    basis = np.stack([np.full_like(x, C4), 2 * C2 * y, 2 * C2 * z, 2 * C2 * x,
                      2 * C1 * x * y, 2 * C1 * y * z, C3 * z * z - C5, 2 * C1 * x * z,
                      C1 * (x * x - y * y)], -1)
    return basis @ sh


def blinn_phong_exponent(roughness: float) -> float:
    return 2.0 / max(roughness, 0.05) ** 4 - 2.0


def light_rows(lighting: Lighting) -> tuple[np.ndarray, np.ndarray]:
    """(MAX_LIGHTS, 3) unit directions and (MAX_LIGHTS, 3) colours * intensity; unused rows black."""
    directions = np.zeros((MAX_LIGHTS, 3), np.float32)
    directions[:, 2] = 1
    colours = np.zeros((MAX_LIGHTS, 3), np.float32)
    for i, light in enumerate(lighting.lights):
        direction = np.asarray(light.direction, np.float32)
        directions[i] = direction / max(float(np.linalg.norm(direction)), 1e-8)
        colours[i] = np.asarray(light.colour, np.float32) * light.intensity
    return directions, colours


def pack_uniforms(lighting: Lighting) -> np.ndarray:
    """The uniform block of relight.frag.glsl as float32 rows of 4 (std140):
    light_direction[4], light_colour[4], sh[9], material (delight, specular, exponent, exposure gain)."""
    directions, colours = light_rows(lighting)
    block = np.zeros((2 * MAX_LIGHTS + SH_COEFFICIENTS + 1, 4), np.float32)
    block[:MAX_LIGHTS, :3] = directions
    block[MAX_LIGHTS:2 * MAX_LIGHTS, :3] = colours
    block[2 * MAX_LIGHTS:-1, :3] = lighting.sh
    block[-1] = (lighting.delight, lighting.specular, blinn_phong_exponent(lighting.roughness),
                 2.0 ** lighting.exposure)
    return block


def relight(photo: np.ndarray, normal_map: np.ndarray, lighting: Lighting,
            mask: np.ndarray | None = None, albedo: np.ndarray | None = None) -> np.ndarray:
    """photo (H, W, 3) sRGB-encoded in [0, 1]; normal_map (H, W, 3) encoded n * 0.5 + 0.5;
    mask (H, W) in [0, 1] or None (everywhere); albedo (H, W, 3) linear or None (the photo with
    `lighting.delight` of its shading guessed and divided out).  Returns the relit photo,
    sRGB-encoded, (H, W, 3)."""
    photo = np.asarray(photo, np.float32)
    normals = np.asarray(normal_map, np.float32) * 2 - 1
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-8)
    directions, colours = light_rows(lighting)

    if albedo is None:
        original = 1 - lighting.delight + lighting.delight * (0.3 + 0.7 * np.maximum(normals[..., 2:3], 0))
        albedo = srgb_to_linear(photo) / original
    else:
        albedo = np.asarray(albedo, np.float32)
    diffuse = np.maximum(sh_irradiance(normals, lighting.sh), 0)
    specular = np.zeros_like(photo)
    exponent = blinn_phong_exponent(lighting.roughness)
    normalisation = lighting.specular * (exponent + 8) / (8 * math.pi)
    for direction, colour in zip(directions, colours):
        if not colour.any():
            continue
        n_dot_l = np.maximum(normals @ direction, 0)[..., None]
        half = direction + np.array([0, 0, 1], np.float32)
        half /= max(float(np.linalg.norm(half)), 1e-8)
        n_dot_h = np.maximum(normals @ half, 0)[..., None]
        diffuse += colour * n_dot_l
        specular += colour * normalisation * n_dot_h ** exponent * n_dot_l
    relit = linear_to_srgb((albedo * diffuse + specular) * 2.0 ** lighting.exposure)
    if mask is None:
        return relit
    weight = np.asarray(mask, np.float32)[..., None]
    return photo + weight * (relit - photo)

"""The relighting model on the GPU: shaders/relight.*.glsl compiled through Blender's gpu module.

`RelitImage` holds one photo's textures (photo, normal map, mask, albedo when there is one) and
draws the relit photo into whatever is bound: the Image Editor's region (the interactive preview) or an offscreen buffer
(`render`, which bakes and which the tests read back).  The model itself is specified once, in
shaders/relight.py, whose `pack_uniforms` fills the shader's uniform block."""
from __future__ import annotations

from pathlib import Path

import gpu
import numpy as np
from gpu_extras.batch import batch_for_shader
from mathutils import Matrix

from .shaders import relight as model

SHADER_FOLDER = Path(__file__).parent / "shaders"
_shader = None


def shader() -> gpu.types.GPUShader:
    """The relighting shader, compiled once per session."""
    global _shader
    if _shader is None:
        interface = gpu.types.GPUStageInterfaceInfo("face_normals_relight_interface")
        interface.smooth("VEC2", "uv_interp")
        info = gpu.types.GPUShaderCreateInfo()
        info.define("MAX_LIGHTS", str(model.MAX_LIGHTS))
        info.typedef_source((SHADER_FOLDER / "relight_params.glsl").read_text())
        info.uniform_buf(0, "RelightParams", "params")
        info.push_constant("MAT4", "ModelViewProjectionMatrix")
        info.push_constant("INT", "linear_output")
        info.push_constant("INT", "use_albedo")
        for slot, name in enumerate(("photo_image", "normal_image", "mask_image", "albedo_image")):
            info.sampler(slot, "FLOAT_2D", name)
        info.vertex_in(0, "VEC2", "position")
        info.vertex_in(1, "VEC2", "texcoord")
        info.vertex_out(interface)
        info.fragment_out(0, "VEC4", "fragColor")
        info.vertex_source((SHADER_FOLDER / "relight.vert.glsl").read_text())
        info.fragment_source((SHADER_FOLDER / "relight.frag.glsl").read_text())
        _shader = gpu.shader.create_from_info(info)
    return _shader


def _texture(rgb: np.ndarray) -> gpu.types.GPUTexture:
    """A float texture from a top-row-first (H, W, C) array (GL rows run bottom-up)."""
    height, width = rgb.shape[:2]
    rgba = np.ones((height, width, 4), np.float32)
    rgba[..., :rgb.shape[2]] = rgb[::-1]
    return gpu.types.GPUTexture((width, height), format="RGBA32F",
                                data=gpu.types.Buffer("FLOAT", rgba.size, rgba.ravel()))


class RelitImage:
    """photo (H, W, 3) sRGB-encoded, normal_map (H, W, 3) encoded n * 0.5 + 0.5, mask (H, W) or
    None, albedo (H, W, 3) linear or None (the photo de-lit by a guess instead)."""

    def __init__(self, photo: np.ndarray, normal_map: np.ndarray, mask: np.ndarray | None = None,
                 albedo: np.ndarray | None = None):
        if normal_map.shape[:2] != photo.shape[:2]:
            raise ValueError(f"the normal map is {normal_map.shape[1]}x{normal_map.shape[0]}, "
                             f"the photo {photo.shape[1]}x{photo.shape[0]}: they must match")
        limit = gpu.capabilities.max_texture_size_get()
        if max(photo.shape[:2]) > limit:
            raise ValueError(f"the photo is larger than this GPU's textures ({limit} pixels a side)")
        self.size = photo.shape[1], photo.shape[0]
        self.photo = _texture(photo)
        self.normal_map = _texture(normal_map)
        self.mask = _texture(np.ones(photo.shape[:2] + (1,), np.float32) if mask is None else mask[..., None])
        self.albedo = None if albedo is None else _texture(albedo)

    def draw(self, lighting: model.Lighting, corners=((-1.0, -1.0), (1.0, 1.0)), *,
             linear_output: bool = False) -> None:
        """Draw the relit photo as a quad from corners[0] (bottom left) to corners[1] (top right),
        in the space of the current matrices: sRGB-encoded values, or with `linear_output` linear
        ones, as a Blender region's framebuffer (the Image Editor's POST_PIXEL) takes them."""
        relight_shader = shader()
        (x0, y0), (x1, y1) = corners
        batch = batch_for_shader(relight_shader, "TRI_STRIP", {
            "position": ((x0, y0), (x1, y0), (x0, y1), (x1, y1)),
            "texcoord": ((0, 0), (1, 0), (0, 1), (1, 1))})
        block = gpu.types.GPUUniformBuf(model.pack_uniforms(lighting).tobytes())
        relight_shader.bind()
        relight_shader.uniform_block("params", block)
        relight_shader.uniform_int("linear_output", int(linear_output))
        relight_shader.uniform_sampler("photo_image", self.photo)
        relight_shader.uniform_sampler("normal_image", self.normal_map)
        relight_shader.uniform_sampler("mask_image", self.mask)
        relight_shader.uniform_int("use_albedo", int(self.albedo is not None))
        relight_shader.uniform_sampler("albedo_image", self.albedo or self.photo)   # bound either way
        batch.draw(relight_shader)

    def render(self, lighting: model.Lighting) -> np.ndarray:
        """The relit photo at the photo's own size, (H, W, 3) float32 sRGB-encoded, top row first."""
        width, height = self.size
        offscreen = gpu.types.GPUOffScreen(width, height, format="RGBA32F")
        try:
            with offscreen.bind():
                framebuffer = gpu.state.active_framebuffer_get()
                framebuffer.clear(color=(0.0, 0.0, 0.0, 0.0))
                gpu.state.viewport_set(0, 0, width, height)
                gpu.state.depth_test_set("NONE")
                gpu.state.blend_set("NONE")
                gpu.state.face_culling_set("NONE")
                with gpu.matrix.push_pop(), gpu.matrix.push_pop_projection():
                    gpu.matrix.load_matrix(Matrix.Identity(4))
                    gpu.matrix.load_projection_matrix(Matrix.Identity(4))
                    self.draw(lighting)
                pixels = framebuffer.read_color(0, 0, width, height, 4, 0, "FLOAT")
        finally:
            offscreen.free()
        pixels.dimensions = width * height * 4
        return np.array(pixels, np.float32).reshape(height, width, 4)[::-1, :, :3]

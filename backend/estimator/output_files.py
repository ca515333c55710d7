"""A photo's Result as files in a folder, named after the photo (`predict` and `batch` both write
through here):

  <stem>_normal.png   16-bit RGB, n * 0.5 + 0.5 (in the convention asked for)
  <stem>_mask.png     8-bit, 255 = person
  <stem>_albedo.png   16-bit RGB, the linear albedo sRGB-encoded (as image editors expect)
  <stem>_height.png   16-bit, the height's min..max (given in the result's JSON) as 0..65535
  <stem>_light.json   the light: SH irradiance and dominant direction (core/sh.py)
and with exr=True the float maps as 32-bit EXR (<stem>_normal.exr raw vectors, _albedo.exr linear,
_height.exr pixels toward the camera) and all of them in one multilayer <stem>.exr (layers normal,
albedo, height, mask: core/exr.py); with npy=True <stem>_normal.npy.  Every file is written
whole or not at all (image_io._write), so a run killed meanwhile leaves no half file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..core.encoding import mask_from_uint8, normals_from_uint16
from ..core.exr import write_multilayer
from .image_io import write_colour_png, write_exr, write_mask_png, write_normal_png, write_scalar_png
from .pipeline import Result


def write_result(result: Result, folder: Path, stem: str, *, npy: bool = False,
                 exr: bool = False) -> dict[str, Path]:
    """The files of one result, by output name (normal, mask, albedo, height, light, and
    normal_exr, albedo_exr, height_exr, exr (the multilayer file), normal_npy when asked)."""
    written: dict[str, Path] = {}
    layers: dict[str, np.ndarray] = {}

    def path(file: str) -> Path:     # "normal.png" -> key "normal", "normal.exr" -> "normal_exr"
        name, kind = file.split(".")
        written[name if kind in ("png", "json") else f"{name}_{kind}"] = folder / f"{stem}_{file}"
        return folder / f"{stem}_{file}"

    if result.normals is not None:
        write_normal_png(path("normal.png"), result.normals)
        vectors = (normals_from_uint16(result.normals) if result.normals.dtype == np.uint16
                   else result.normals.astype(np.float32))
        if npy:
            _save_npy(path("normal.npy"), vectors)
        if exr:
            write_exr(path("normal.exr"), vectors)
            layers["normal"] = vectors
    if result.mask is not None:
        write_mask_png(path("mask.png"), result.mask)
        layers["mask"] = mask_from_uint8(result.mask)
    if result.albedo is not None:
        write_colour_png(path("albedo.png"), result.albedo)
        if exr:
            write_exr(path("albedo.exr"), result.albedo)
            layers["albedo"] = result.albedo
    if result.height is not None:
        write_scalar_png(path("height.png"), result.height, float(result.height.min()),
                         float(result.height.max()))
        if exr:
            write_exr(path("height.exr"), result.height)
            layers["height"] = result.height
    if exr and layers:
        written["exr"] = folder / f"{stem}.exr"
        write_multilayer(written["exr"], layers)
    if result.light is not None:
        _save_text(path("light.json"), json.dumps(result.light.to_json(), indent=1))
    return written


def _save_npy(target: Path, values: np.ndarray) -> None:
    temporary = target.with_name(f".{target.stem}.{os.getpid()}.partial.npy")
    np.save(temporary, values)
    os.replace(temporary, target)


def _save_text(target: Path, text: str) -> None:
    temporary = target.with_name(f".{target.stem}.{os.getpid()}.partial")
    temporary.write_text(text)
    os.replace(temporary, target)

"""Estimate Files... with many photos and a backend on this machine: one `batch` request (the
backend reads the files and writes the maps), progress from it, and the maps loaded into Blender
as the one-request-per-photo path makes them."""
import os

import numpy as np
import pytest

from .conftest import save_photo
from .conftest import image_array

pytestmark = pytest.mark.slow   # Blender (the bpy module) with the extension installed


@pytest.fixture
def many_photos(astronaut, tmp_path, addon):
    count = addon.backend_jobs.BATCH_FROM_FILES
    names = [f"p{i}.png" for i in range(count)]
    for i, name in enumerate(names):
        save_photo(np.roll(astronaut, 4 * i, axis=1), tmp_path / name)
    return names


def test_many_files_go_as_one_batch_and_load_like_single_requests(clean_file, addon, backend, many_photos, tmp_path):
    bpy = clean_file
    # the first photo alone, the old way (one request), for comparison
    assert bpy.ops.face_normals.estimate(source="FILES", directory=str(tmp_path), files=[{"name": "p0.png"}],
                                         save_mode="PACK") == {"FINISHED"}
    single = image_array(bpy.data.images["p0_normal"])[..., :3].copy()
    single_centres = addon.images.view_centres(bpy.data.images["p0_normal"])

    prefs = addon.preferences.get()
    paths = [str(tmp_path / name) for name in many_photos]
    assert addon.backend_jobs.batch_on_the_backend(prefs, paths)
    assert not addon.backend_jobs.batch_on_the_backend(prefs, paths[:-1])
    job = addon.backend_jobs.FilesBatchJob(prefs, paths, detect=True)
    seen = set()
    while not job.step():
        seen.add((job.done, job.total))
    assert (len(paths), len(paths)) in {(job.done, job.total)} | seen and any(0 < d < len(paths) for d, _ in seen)
    made, failed, _ = addon.backend_jobs.store_batch(job, "PACK")
    assert not failed and sorted(made) == sorted(f"{os.path.splitext(n)[0]}_normal" for n in many_photos)
    assert not os.path.exists(job.output)                       # its temporary folder is gone

    # the operator takes the batch path for as many files, and the maps match the old way's
    result = bpy.ops.face_normals.estimate(source="FILES", directory=str(tmp_path),
                                           files=[{"name": name} for name in many_photos], save_mode="PACK")
    assert result == {"FINISHED"}
    normal = bpy.data.images["p0_normal"]
    assert normal.colorspace_settings.name == "Non-Color" and normal.packed_file is not None
    batched = image_array(normal)[..., :3]
    vectors = batched * 2 - 1
    assert np.abs(np.linalg.norm(vectors, axis=-1) - 1).max() < 2e-3
    assert np.abs(batched - single).max() < 2e-3               # 16-bit files against float16 on the wire
    assert np.allclose(addon.images.view_centres(normal), single_centres, atol=1e-3)
    assert bpy.data.images.get("p0_mask") is not None
    assert [i.name for i in bpy.data.images if i.name.startswith("p0_normal")] == ["p0_normal"]

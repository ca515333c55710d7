"""The numpy half of projecting photos onto a mesh's UVs (addon/texels.py), without Blender: a
square plane whose UVs fill the map, seen by a camera straight above it, with every frame known."""
from __future__ import annotations

import math

import numpy as np
import pytest

from . import source  # noqa: F401  (the add-on's source as `face_normals`)
from face_normals import texels  # noqa: E402

SIZE = 16


def plane_arrays() -> dict:
    """Blender's triangulated corners of a 2x2 plane at z = 0 (x = 2u - 1, y = 2v - 1), facing +z,
    its MikkTSpace tangent +x (u grows with x) and bitangent +y."""
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    position = np.column_stack([2 * uv - 1, np.zeros(4, np.float32)])
    return {"corners": np.array([[0, 1, 2], [0, 2, 3]]), "position": position, "uv": uv,
            "normal": np.tile([0, 0, 1], (4, 1)).astype(np.float32),
            "tangent": np.tile([1, 0, 0], (4, 1)).astype(np.float32), "sign": np.ones(4, np.float32)}


def translation(x: float, y: float, z: float) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = x, y, z
    return matrix


def turn(axis: str, degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    matrix = np.eye(4)
    matrix[i, i] = matrix[j, j] = c
    matrix[i, j], matrix[j, i] = -s, s
    return matrix


def perspective(scale: float = 1.0, near: float = 0.1, far: float = 100.0) -> np.ndarray:
    """A camera's projection (OpenGL's, as Blender's calc_matrix_camera gives it), square."""
    return np.array([[scale, 0, 0, 0], [0, scale, 0, 0],
                     [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)], [0, 0, -1, 0]])


def tilted_map(degrees: float, size: int = 32) -> np.ndarray:
    """A photo's camera-space normals, all tilted toward +x."""
    a = math.radians(degrees)
    return np.tile(np.array([math.sin(a), 0, math.cos(a)], np.float32), (size, size, 1))


def project(object_world=None, normal_map=None, mask=None) -> texels.Projection:
    """The plane seen from 5 units above by a camera looking down (-z), the plane inside its frame."""
    surface = texels.surface(plane_arrays(), SIZE)
    return texels.project(surface, np.eye(4) if object_world is None else object_world, translation(0, 0, 5),
                          perspective(), orthographic=False, corner_visible=np.ones(4, np.float32),
                          normal_map=tilted_map(30) if normal_map is None else normal_map, mask=mask)


def test_rasterising_finds_every_texel_centre_inside_the_triangles():
    arrays = plane_arrays()
    rows, cols, tri, bary = texels.rasterise_uv(arrays["uv"], arrays["corners"], SIZE)
    assert {(r, c) for r, c in zip(rows, cols)} == {(r, c) for r in range(SIZE) for c in range(SIZE)}
    np.testing.assert_allclose(bary.sum(1), 1, atol=1e-6)
    centre_uv = np.einsum("kc,kcd->kd", bary, arrays["uv"][arrays["corners"][tri]])
    np.testing.assert_allclose(centre_uv, np.column_stack([cols + 0.5, SIZE - 1 - rows + 0.5]) / SIZE, atol=1e-5)


def test_rows_run_top_down():
    """v = 1 is row 0: a triangle in the upper half of the UV square lands in the upper rows."""
    uv = np.array([[0, 0.6], [1, 0.6], [0.5, 1]], np.float32)
    rows, _, _, _ = texels.rasterise_uv(uv, np.array([[0, 1, 2]]), SIZE)
    assert len(rows) and rows.max() < SIZE * 0.4


def test_a_degenerate_triangle_covers_nothing():
    uv = np.array([[0, 0], [0.5, 0.5], [1, 1]], np.float32)
    rows, cols, tri, bary = texels.rasterise_uv(uv, np.array([[0, 1, 2]]), SIZE)
    assert len(rows) == len(cols) == len(tri) == len(bary) == 0


def test_the_surface_samples_the_mesh_at_each_texel_once():
    surface = texels.surface(plane_arrays(), SIZE)
    assert surface.covered.all() and len(surface.position) == SIZE * SIZE
    np.testing.assert_allclose(surface.normal, np.tile([0, 0, 1], (SIZE * SIZE, 1)), atol=1e-6)
    np.testing.assert_allclose(surface.bitangent, np.tile([0, 1, 0], (SIZE * SIZE, 1)), atol=1e-6)
    assert np.abs(surface.position[:, :2]).max() < 1 and np.abs(surface.position[:, 2]).max() < 1e-6


def test_a_camera_facing_plane_takes_the_photos_normals_as_they_are():
    projection = project()
    a = math.radians(30)
    np.testing.assert_allclose(projection.normals, np.broadcast_to([math.sin(a), 0, math.cos(a)],
                                                                   (SIZE, SIZE, 3)), atol=1e-4)
    np.testing.assert_allclose(projection.weight, 1, atol=1e-6)


def test_a_turned_plane_gets_the_normals_in_its_own_tangent_frame():
    """Turned 90 degrees about z, the plane's tangent (+x) points along world +y: a normal tilted
    toward world +x leans toward -bitangent."""
    projection = project(object_world=turn("z", 90))
    a = math.radians(30)
    np.testing.assert_allclose(projection.normals[SIZE // 2, SIZE // 2], [0, -math.sin(a), math.cos(a)], atol=1e-4)


def test_a_plane_facing_away_gets_no_weight():
    assert project(object_world=turn("y", 180)).weight.max() == 0


def test_the_mask_limits_the_weight():
    mask = np.zeros((32, 32), np.float32)
    mask[:, 16:] = 1                                  # the photo's right half only
    weight = project(mask=mask).weight
    assert weight[:, : SIZE // 2 - 2].max() == 0 and weight[:, SIZE // 2 + 2:].min() == pytest.approx(1)


def test_bilinear_sampling_interpolates_between_pixel_centres():
    image = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    sampled = texels.bilinear(image, np.array([0.0, 1.5, 3.0]), np.array([0.0, 0.5, 2.0]))
    np.testing.assert_allclose(sampled[:, 0], [0, 3.5, 11])


def constant(normal, weight) -> texels.Projection:
    normal = np.asarray(normal, np.float32) / np.linalg.norm(normal)
    return texels.Projection(np.tile(normal, (4, 4, 1)), np.full((4, 4), weight, np.float32))


def test_facing_blends_photos_by_their_weights():
    normals, coverage, colour = texels.combine([constant([1, 0, 1], 0.5), constant([-1, 0, 1], 0.5)])
    np.testing.assert_allclose(normals, np.broadcast_to([0, 0, 1], (4, 4, 3)), atol=1e-6)
    np.testing.assert_allclose(coverage, 1)
    assert colour is None


def test_fill_uses_a_later_photo_only_where_the_earlier_left_room():
    first, second = constant([1, 0, 1], 1.0), constant([-1, 0, 1], 1.0)
    normals, _, _ = texels.combine([first, second], "FILL")
    np.testing.assert_allclose(normals, first.normals, atol=1e-6)


def test_where_no_photo_sees_the_map_is_flat():
    normals, coverage, _ = texels.combine([constant([1, 0, 1], 0.0)])
    np.testing.assert_allclose(normals, np.broadcast_to(texels.FLAT, (4, 4, 3)))
    assert coverage.max() == 0


def test_growing_extends_values_by_rings_of_neighbours():
    values = np.zeros((11, 11, 3), np.float32)
    covered = np.zeros((11, 11), bool)
    values[5, 5], covered[5, 5] = (1, 2, 3), True
    grown = texels.grow(values, covered, steps=2)
    rows, cols = np.nonzero(grown.any(-1))
    assert set(abs(rows - 5) + abs(cols - 5)) == {0, 1, 2}
    np.testing.assert_allclose(grown[rows, cols], np.broadcast_to([1, 2, 3], (len(rows), 3)))
    assert not values[4, 5].any()             # the input is left as it was


def test_a_photos_height_lands_on_the_surface_in_object_units():
    """The camera 5 units away with lens scale 1 frames 10 units: a height of 0.01 of the photo's
    height is 0.1 world units, 0.05 on an object scaled by 2 (its own units are twice as large)."""
    surface = texels.surface(plane_arrays(), SIZE)
    for scale, expected in ((1.0, 0.1), (2.0, 0.05)):
        projection = texels.project(surface, np.diag([scale, scale, scale, 1.0]), translation(0, 0, 5),
                                    perspective(), orthographic=False, corner_visible=np.ones(4, np.float32),
                                    normal_map=tilted_map(0), mask=None, height=np.full((32, 32), 0.01, np.float32))
        assert projection.height is not None
        # the plane lies at z = 0, 5 units from the camera, whatever its scale
        np.testing.assert_allclose(projection.height, expected, rtol=1e-4)


def heights(height: np.ndarray, weight: np.ndarray) -> texels.Projection:
    size = height.shape[0]
    return texels.Projection(np.tile(texels.FLAT, (size, size, 1)), weight.astype(np.float32),
                             height=height.astype(np.float32))


def test_heights_of_two_photos_are_aligned_where_they_overlap_before_blending():
    """Two photos of one slope, each with its own zero (the second 5 higher): moved onto the
    first by the median difference, they blend into the one slope with no step between them."""
    slope = np.tile(np.arange(8, dtype=np.float32), (8, 1))
    left, right = np.zeros((8, 8)), np.zeros((8, 8))
    left[:, :5], right[:, 3:] = 1, 1
    photos = [heights(slope, left), heights(slope + 5, right)]
    assert texels.height_offsets(photos) == pytest.approx([0, -5])
    for mode in ("FACING", "FILL"):
        relief = texels.combine_heights(photos, mode)
        np.testing.assert_allclose(relief, slope - np.median(slope), atol=1e-6)


def test_a_photo_that_overlaps_no_other_keeps_its_own_zero():
    left, right = np.zeros((4, 4)), np.zeros((4, 4))
    left[:, :2], right[:, 2:] = 1, 1
    assert texels.height_offsets([heights(np.ones((4, 4)), left), heights(np.full((4, 4), 3.0), right)]) == [0, 0]


def test_the_relief_is_zero_where_the_photos_fade_out_and_where_none_sees():
    """A photo seeing the left columns fully, fading over the middle ones: the height where it
    fades is the displacement's zero, and it goes to 0 with the weight; unseen texels stay 0."""
    weight = np.tile(np.array([1, 1, 1, 0.75, 0.5, 0.25, 0, 0], np.float32), (8, 1))
    height = np.full((8, 8), 2.0, np.float32)
    height[:, :3] = 3.0
    relief = texels.combine_heights([heights(height, weight)])
    np.testing.assert_allclose(relief[:, :3], 1.0)
    np.testing.assert_allclose(relief[:, 3:], 0.0)
    assert not texels.combine_heights([heights(height, np.zeros((8, 8)))]).any()

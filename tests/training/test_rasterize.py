import numpy as np

from backend.training.rasterize import rasterize

# Two triangles, counter-clockwise as seen by the viewer with y up, so clockwise on a y-down screen.
SQUARE = np.array([[2.0, 2.0], [2.0, 18.0], [18.0, 18.0], [18.0, 2.0]])
FRONT = np.array([[0, 1, 2], [0, 2, 3]])


def test_covers_the_pixels_whose_centres_lie_inside():
    fragments = rasterize(SQUARE, np.ones(4), FRONT, 20, 20)
    covered = fragments.triangle >= 0
    assert covered[2:18, 2:18].all()
    assert covered.sum() == 16 * 16
    assert np.allclose(fragments.barycentric[covered].sum(-1), 1, atol=1e-5)


def test_back_faces_are_culled():
    fragments = rasterize(SQUARE, np.ones(4), FRONT[:, ::-1], 20, 20)
    assert (fragments.triangle < 0).all()


def test_the_nearer_triangle_wins_and_interpolation_follows_it():
    screen = np.concatenate([SQUARE, SQUARE])
    depth = np.array([5.0] * 4 + [2.0] * 4)
    triangles = np.concatenate([FRONT, FRONT + 4])          # the second square is nearer
    fragments = rasterize(screen, depth, triangles, 20, 20)
    assert set(np.unique(fragments.triangle[fragments.triangle >= 0])) == {2, 3}
    corner_values = np.zeros((4, 3, 1))
    corner_values[2:] = 7.0
    assert np.allclose(fragments.interpolate(corner_values)[5:15, 5:15], 7.0)


def test_barycentrics_interpolate_linearly():
    fragments = rasterize(SQUARE, np.ones(4), FRONT, 20, 20)
    x_at_corners = SQUARE[FRONT][..., :1]                    # interpolate the x coordinate itself
    x = fragments.interpolate(x_at_corners)[..., 0]
    assert np.allclose(x[10, 2:18], np.arange(2, 18) + 0.5, atol=1e-4)
    x_at_vertices = SQUARE[:, :1]                            # the same, given per vertex
    assert np.array_equal(fragments.interpolate(x_at_vertices, FRONT)[..., 0], x)

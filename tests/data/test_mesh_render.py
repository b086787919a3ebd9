"""Tests for the NumPy mesh rasterizer (tf3dgan.data.mesh_render)."""

import numpy as np
import pytest
import trimesh
from scipy import ndimage

from tf3dgan.data import mesh_render
from tf3dgan.data.render import BACKGROUND_COLOR, key_light_direction, render_voxels
from tf3dgan.data.voxelize import UnusableShapeError, voxelize_mesh

BACKGROUND = BACKGROUND_COLOR.astype(np.uint8)
VIEWS = ((30, 45), (15, 0), (20, 200), (45, 300), (35, 120))


def _mask(image):
    return np.any(image != BACKGROUND, axis=-1)


def _iou(first, second):
    return (first & second).sum() / (first | second).sum()


def _box(extents=(1.0, 0.6, 0.4), center=(0.0, 0.0, 0.0)):
    return trimesh.creation.box(extents=extents,
                                transform=trimesh.transformations.translation_matrix(center))


def _l_shape():
    """A long low base with a tower at its +x end: not symmetric under any mirror of x."""
    return trimesh.util.concatenate([_box((1.0, 0.4, 0.2), (0.0, 0.0, 0.1)),
                                     _box((0.2, 0.4, 0.8), (0.4, 0.0, 0.4))])


@pytest.mark.parametrize("elevation,azimuth", VIEWS)
def test_box_render_matches_its_voxel_render(elevation, azimuth):
    box = _box()
    mesh_mask = _mask(mesh_render.render_mesh(box, 64, elevation, azimuth, resolution=16))
    voxel_mask = _mask(render_voxels(voxelize_mesh(box, 16), 64, elevation=elevation,
                                     azimuth=azimuth))
    assert _iou(mesh_mask, voxel_mask) > 0.8


def test_asymmetric_mesh_matches_its_voxels_and_not_their_mirror():
    shape = _l_shape()
    grid = voxelize_mesh(shape, 32)
    mirrored = grid[::-1]
    for elevation, azimuth in VIEWS:
        mesh_mask = _mask(mesh_render.render_mesh(shape, 64, elevation, azimuth, resolution=32))
        same = _iou(mesh_mask, _mask(render_voxels(grid, 64, elevation=elevation,
                                                   azimuth=azimuth)))
        other = _iou(mesh_mask, _mask(render_voxels(mirrored, 64, elevation=elevation,
                                                    azimuth=azimuth)))
        assert same > 0.8, (elevation, azimuth, same)
        assert same > other + 0.1, (elevation, azimuth, same, other)


def test_viewpoint_convention_z_up_and_azimuth_zero_looks_at_minus_y():
    shape = _l_shape()
    # Azimuth 0: x runs to the right, so the tower (+x end) is on the right, and it is up.
    mask = _mask(mesh_render.render_mesh(shape, 64, 10, 0))
    rows, _ = np.nonzero(mask)
    top_rows = mask[:rows.min() + 8]
    assert np.nonzero(top_rows)[1].mean() > 40
    # Azimuth 180 looks from +y: x runs to the left, the tower is on the left.
    mask = _mask(mesh_render.render_mesh(shape, 64, 10, 180))
    rows, _ = np.nonzero(mask)
    assert np.nonzero(mask[:rows.min() + 8])[1].mean() < 24


def test_up_axis_rotates_a_y_up_mesh_upright():
    column = _box((0.2, 1.0, 0.2))  # tall along y, as a ShapeNet/glTF file would store it
    rows, columns = np.nonzero(_mask(mesh_render.render_mesh(column, 64, 10, 30, up_axis="y")))
    assert rows.max() - rows.min() > 2 * (columns.max() - columns.min())
    rows, columns = np.nonzero(_mask(mesh_render.render_mesh(column, 64, 10, 30)))
    assert rows.max() - rows.min() < columns.max() - columns.min()


def test_box_faces_are_lit_like_the_voxel_renderer():
    image = mesh_render.render_mesh(_box((1, 1, 1)), 128).astype(np.float64).sum(axis=-1)

    def patch(row, column):
        return float(np.median(image[row - 3:row + 4, column - 3:column + 4]))

    # Default view (30, 45): top face up, the -y face lower left, the +x face lower right;
    # the default key light makes the top brightest and the right face darkest.
    top, left, right = patch(30, 64), patch(80, 35), patch(80, 93)
    assert top > left + 20 and left > right + 20, (top, left, right)


def test_faces_are_lit_from_both_sides():
    box = _box()
    inverted = box.copy()
    inverted.invert()
    np.testing.assert_array_equal(mesh_render.render_mesh(box, 48),
                                  mesh_render.render_mesh(inverted, 48))


def test_light_direction_and_intensity():
    box = _box()
    default = mesh_render.render_mesh(box, 48, 30, 45)
    np.testing.assert_array_equal(
        default, mesh_render.render_mesh(box, 48, 30, 45, light_direction=2 * key_light_direction(45)))
    mask = _mask(default)
    dim = mesh_render.render_mesh(box, 48, 30, 45, light_intensity=0.5)
    assert dim[mask].mean() < default[mask].mean() - 10
    from_below = mesh_render.render_mesh(box, 48, 30, 45, light_direction=(0, 0, -1))
    # No visible face sees a light from below: inside the silhouette (away from the pixels
    # mixed with the background) only the ambient term is left, the same on every face.
    inner = ndimage.binary_erosion(mask, iterations=2)
    flat = from_below[inner].astype(np.float64).sum(axis=-1)
    lit = default[inner].astype(np.float64).sum(axis=-1)
    assert np.percentile(flat, 90) - np.percentile(flat, 10) < 5
    assert np.percentile(lit, 90) - np.percentile(lit, 10) > 100
    with pytest.raises(ValueError, match="light_direction must be a non-zero finite vector"):
        mesh_render.render_mesh(box, 48, light_direction=(0, 0, 0))
    with pytest.raises(ValueError, match="light_intensity must be a finite number >= 0"):
        mesh_render.render_mesh(box, 48, light_intensity=-1)


def test_rasterize_keeps_the_nearest_triangle_and_leaves_no_cracks():
    size = 16
    square = np.array([[[2, 2], [14, 2], [14, 14]], [[2, 2], [14, 14], [2, 14]]], float)
    small = np.array([[[4, 4], [12, 4], [8, 12]]], float)
    corners = np.concatenate([square, small])
    for near_first in (False, True):
        depths = np.array([[0.0] * 3, [0.0] * 3, [5.0] * 3])
        shades = np.array([0.5, 0.5, 1.0], np.float32)
        order = [2, 0, 1] if near_first else [0, 1, 2]
        depth, shade = mesh_render.rasterize(corners[order], depths[order], shades[order], size)
        covered = np.isfinite(depth)
        # Pixel centres 2.5 .. 13.5 lie inside the square: exactly a 12 x 12 block, no gaps
        # along the shared diagonal.
        assert covered.sum() == 144 and covered[2:14, 2:14].all()
        assert shade[7, 8] == 1.0 and depth[7, 8] == 5.0  # the small, nearer triangle
        assert shade[3, 3] == 0.5


def test_files_render_like_the_mesh_in_memory(tmp_path):
    shape = _l_shape()
    expected = mesh_render.render_mesh(shape, 32, 25, 70)
    for extension in ("off", "obj", "stl"):
        path = tmp_path / f"shape.{extension}"
        shape.export(path)
        np.testing.assert_array_equal(mesh_render.render_mesh(str(path), 32, 25, 70), expected)


def test_bad_inputs_are_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mesh_render.render_mesh(tmp_path / "missing.obj")
    broken = tmp_path / "broken.off"
    broken.write_text("OFF\n3 1 0\n0 0 0\n")
    with pytest.raises(UnusableShapeError, match="broken.off"):
        mesh_render.render_mesh(broken)
    with pytest.raises(ValueError, match="image_size must be an integer >= 8"):
        mesh_render.render_mesh(_box(), 4)

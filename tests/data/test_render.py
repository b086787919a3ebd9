"""Tests for the NumPy voxel renderer (tf3dgan.data.render)."""

import os
import time

import numpy as np
import pytest
from PIL import Image

from tf3dgan.data.render import BACKGROUND_COLOR, render_grid, render_voxels, save_png
from tf3dgan.data.synthetic import make_synthetic_dataset

BACKGROUND = tuple(int(value) for value in BACKGROUND_COLOR)


def _object_mask(image: np.ndarray) -> np.ndarray:
    """Pixels that differ from the background colour."""
    return np.any(image != np.array(BACKGROUND, dtype=np.uint8), axis=-1)


def _cube(resolution: int = 16) -> np.ndarray:
    grid = np.zeros((resolution,) * 3, dtype=np.float32)
    quarter = resolution // 4
    grid[quarter:-quarter, quarter:-quarter, 0:resolution // 2] = 1.0
    return grid


@pytest.mark.parametrize("image_size", (32, 128, 97))
def test_output_shape_and_dtype(image_size):
    image = render_voxels(_cube(), image_size=image_size)
    assert image.shape == (image_size, image_size, 3)
    assert image.dtype == np.uint8


def test_channel_axis_of_size_one_is_accepted():
    grid = _cube()
    np.testing.assert_array_equal(render_voxels(grid[..., None]), render_voxels(grid))


def test_empty_grid_renders_uniform_background():
    image = render_voxels(np.zeros((32, 32, 32)), image_size=64)
    assert np.all(image == np.array(BACKGROUND, dtype=np.uint8))


def test_threshold_decides_what_is_solid():
    faint = _cube() * 0.4
    assert not _object_mask(render_voxels(faint, image_size=64)).any()
    assert _object_mask(render_voxels(faint, image_size=64, threshold=0.3)).any()


def test_cube_has_distinctly_lit_faces():
    image = render_voxels(_cube(), image_size=128).astype(np.float64).sum(axis=-1)
    object_pixels = image[_object_mask(render_voxels(_cube(), image_size=128))]
    # Several shade levels, each covering a real share of the object.
    levels, counts = np.unique(np.round(object_pixels / 30), return_counts=True)
    assert np.sum(counts > 0.1 * object_pixels.size) >= 2
    assert object_pixels.max() - object_pixels.min() > 150

    # Default view: top face at the upper middle, front (-y) face lower left, +x face lower
    # right; the light makes the top brightest and the right side darkest.
    def patch(row, column):
        return float(np.median(image[row - 3:row + 4, column - 3:column + 4]))

    top, left, right = patch(38, 64), patch(80, 40), patch(80, 88)
    assert top > left + 20 and left > right + 20, (top, left, right)


def test_object_fills_most_of_the_tile():
    voxels, _ = make_synthetic_dataset(1, 32, seed=0)
    for grid in voxels:
        mask = _object_mask(render_voxels(grid, image_size=128))
        rows, columns = np.nonzero(mask)
        extent = max(rows.max() - rows.min(), columns.max() - columns.min()) + 1
        assert extent > 0.75 * 128


def test_tall_column_renders_taller_than_wide_and_upright():
    grid = np.zeros((32, 32, 32))
    grid[14:18, 14:18, 0:30] = 1.0
    grid[8:24, 8:24, 26:30] = 1.0  # A wide cap on top, so "up" is testable.
    mask = _object_mask(render_voxels(grid, image_size=128))
    rows, columns = np.nonzero(mask)
    assert rows.max() - rows.min() > 1.3 * (columns.max() - columns.min())
    widths = mask.sum(axis=1)
    widest_row = int(np.argmax(widths))
    assert widest_row < (rows.min() + rows.max()) / 2, "the cap should be at the top"

    column_only = np.zeros((32, 32, 32))
    column_only[14:18, 14:18, 0:30] = 1.0
    mask = _object_mask(render_voxels(column_only, image_size=128))
    rows, columns = np.nonzero(mask)
    assert rows.max() - rows.min() > 2 * (columns.max() - columns.min())


def test_single_voxel_and_full_grid_do_not_crash():
    single = np.zeros((16, 16, 16))
    single[3, 5, 7] = 1
    assert _object_mask(render_voxels(single, image_size=64)).any()
    full = render_voxels(np.ones((16, 16, 16)), image_size=64)
    assert _object_mask(full).mean() > 0.4
    noisy = np.random.default_rng(0).random((32, 32, 32))
    assert render_voxels(noisy, image_size=64).shape == (64, 64, 3)


def test_other_view_angles_work():
    grid = _cube()
    for elevation, azimuth in ((0, 0), (90, 0), (10, 200), (-20, -45)):
        image = render_voxels(grid, image_size=48, elevation=elevation, azimuth=azimuth)
        assert _object_mask(image).any()


@pytest.mark.parametrize("shape", [(16, 16), (2, 16, 16, 16), (16, 16, 16, 2), (0, 4, 4)])
def test_wrong_grid_shape_is_rejected(shape):
    with pytest.raises(ValueError, match=r"shape \[R, R, R\]"):
        render_voxels(np.zeros(shape))


def test_bad_image_size_is_rejected():
    with pytest.raises(ValueError, match="image_size must be an integer >= 8"):
        render_voxels(_cube(), image_size=4)


def test_grid_tiling_size():
    batch = np.stack([_cube()] * 5)
    image = render_grid(batch, image_size=32)
    # ceil(sqrt(5)) = 3 columns, 2 rows, 2-pixel separators.
    assert image.shape == (2 * 34 - 2, 3 * 34 - 2, 3)
    assert image.dtype == np.uint8
    assert render_grid(batch, columns=5, image_size=32).shape == (32, 5 * 34 - 2, 3)
    assert render_grid(batch, columns=1, image_size=32).shape == (5 * 34 - 2, 32, 3)
    # Each tile is the single render; the unused sixth cell is blank background.
    np.testing.assert_array_equal(image[:32, :32], render_voxels(batch[0], image_size=32))
    assert np.all(image[34:, 68:] == np.array(BACKGROUND, dtype=np.uint8))
    # Separator lines are not background.
    assert np.all(_object_mask(image[:, 32:34]))


def test_grid_accepts_channel_axis_and_draws_labels():
    batch = np.stack([_cube(), np.zeros((16, 16, 16))])[..., None]
    plain = render_grid(batch, image_size=64)
    labelled = render_grid(batch, image_size=64, labels=["cube", "empty"])
    assert plain.shape == labelled.shape == (64, 130, 3)
    # The label of the empty tile is the only thing drawn on it.
    assert not _object_mask(plain[:, 66:]).any()
    assert _object_mask(labelled[:20, 66:]).any()
    assert not _object_mask(labelled[30:, 66:]).any()


def test_grid_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"\[N, R, R, R\]"):
        render_grid(_cube())
    with pytest.raises(ValueError, match="labels has 1 entries but batch has 2"):
        render_grid(np.stack([_cube()] * 2), labels=["one"])
    with pytest.raises(ValueError, match="batch is empty"):
        render_grid(np.zeros((0, 16, 16, 16)))
    with pytest.raises(ValueError, match="columns must be a positive integer"):
        render_grid(np.stack([_cube()] * 2), columns=0)


def test_render_speed():
    voxels, _ = make_synthetic_dataset(4, 32, seed=0)
    render_grid(voxels[:1], image_size=128)  # Warm up imports and caches.
    start = time.perf_counter()
    render_grid(voxels[:16], image_size=128)
    elapsed = time.perf_counter() - start
    # Well under a second on a laptop; the bound leaves room for slow CI machines.
    assert elapsed < 3.0, elapsed


def test_save_png_round_trip(tmp_path):
    image = render_grid(np.stack([_cube()] * 3), image_size=32, labels=["a", "b", "c"])
    path = tmp_path / "nested" / "samples.png"
    save_png(image, path)
    with Image.open(path) as loaded:
        assert loaded.format == "PNG"
        np.testing.assert_array_equal(np.asarray(loaded.convert("RGB")), image)
    # Overwriting replaces the file and leaves no temporary files behind.
    save_png(np.zeros((4, 5, 3), dtype=np.uint8), str(path))
    with Image.open(path) as loaded:
        assert loaded.size == (5, 4)
    assert os.listdir(path.parent) == ["samples.png"]


def test_save_png_rejects_non_uint8_rgb(tmp_path):
    with pytest.raises(ValueError, match=r"uint8 array of shape \[H, W, 3\]"):
        save_png(np.zeros((4, 4, 3), dtype=np.float32), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="uint8"):
        save_png(np.zeros((4, 4, 4), dtype=np.uint8), tmp_path / "bad.png")
    assert not os.listdir(tmp_path)

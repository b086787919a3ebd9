"""Tests for reading and writing .binvox files (tf3dgan.data.binvox)."""

import io

import numpy as np
import pytest

from tf3dgan.data.binvox import (
    BinvoxGrid,
    read_binvox,
    rotate_from_z_up,
    rotate_to_z_up,
    write_binvox,
)

UP_AXES = ("x", "y", "z")

HEADER_4 = b"#binvox 1\ndim 4 4 4\ntranslate 0.0 0.0 0.0\nscale 1.0\ndata\n"

# A 4^3 file built by hand from the format definition. The voxel at binvox (x, y, z) is
# number x * 16 + z * 4 + y in the data (y fastest, then z, then x). Set voxels:
#   (0, 0, 0) -> 0;  (1, 2, 3) -> 16 + 12 + 2 = 30;  (2, y, 1) for y = 0..3 -> 36..39;
#   (3, 3, 0) -> 48 + 0 + 3 = 51.
# Runs: 1 x1 | 0 x29 (1..29) | 1 x1 (30) | 0 x5 (31..35) | 1 x4 (36..39) | 0 x11 (40..50)
#       | 1 x1 (51) | 0 x12 (52..63): 64 voxels in all.
RUNS_4 = bytes([1, 1, 0, 29, 1, 1, 0, 5, 1, 4, 0, 11, 1, 1, 0, 12])
SET_VOXELS_BINVOX = [(0, 0, 0), (1, 2, 3), (2, 0, 1), (2, 1, 1), (2, 2, 1), (2, 3, 1), (3, 3, 0)]


def _grid_with(voxels, size=4):
    grid = np.zeros((size,) * 3, dtype=np.uint8)
    for index in voxels:
        grid[index] = 1
    return grid


def _write_bytes(tmp_path, data, name="shape.binvox"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_hand_written_file_reads_as_binvox_frame_with_up_axis_z(tmp_path):
    path = _write_bytes(tmp_path, HEADER_4 + RUNS_4)
    grid = read_binvox(path, up_axis="z")
    assert isinstance(grid, BinvoxGrid)
    assert grid.voxels.dtype == np.uint8 and grid.voxels.shape == (4, 4, 4)
    np.testing.assert_array_equal(grid.voxels, _grid_with(SET_VOXELS_BINVOX))
    assert grid.dims == (4, 4, 4)
    assert grid.translate == (0.0, 0.0, 0.0) and grid.scale == 1.0


def test_hand_written_file_default_maps_binvox_y_up_to_our_z_up(tmp_path):
    # ours (x, y, z) = binvox (x, -z, y): binvox voxel (x, y, z) lands at ours[x, 3 - z, y].
    expected = _grid_with([(0, 3, 0), (1, 0, 2), (2, 2, 0), (2, 2, 1), (2, 2, 2), (2, 2, 3),
                           (3, 3, 3)])
    grid = read_binvox(_write_bytes(tmp_path, HEADER_4 + RUNS_4))
    np.testing.assert_array_equal(grid.voxels, expected)


def test_writer_produces_the_hand_written_bytes():
    buffer = io.BytesIO()
    write_binvox(buffer, _grid_with(SET_VOXELS_BINVOX), up_axis="z")
    assert buffer.getvalue() == HEADER_4 + RUNS_4


def test_runs_longer_than_255_are_split_and_read_back(tmp_path):
    # 8^3 = 512 voxels: value 1 for the first 300, then 0. Pairs: (1,255) (1,45) (0,212).
    header = b"#binvox 1\ndim 8 8 8\ntranslate 0 0 0\nscale 1\ndata\n"
    data = header + bytes([1, 255, 1, 45, 0, 212])
    grid = read_binvox(_write_bytes(tmp_path, data), up_axis="z")
    raw = np.transpose(grid.voxels, (0, 2, 1)).ravel()  # back to file order (x, z, y)
    np.testing.assert_array_equal(raw, np.r_[np.ones(300), np.zeros(212)])
    buffer = io.BytesIO()
    write_binvox(buffer, grid.voxels, up_axis="z")
    assert buffer.getvalue().endswith(b"data\n" + bytes([1, 255, 1, 45, 0, 212]))


@pytest.mark.parametrize("up_axis", UP_AXES)
@pytest.mark.parametrize("size", (1, 5, 32))
def test_round_trip_is_exact(tmp_path, size, up_axis):
    rng = np.random.default_rng(size)
    voxels = (rng.random((size,) * 3) < 0.3).astype(np.uint8)
    path = tmp_path / "grid.binvox"
    write_binvox(path, voxels, translate=(-0.1, 0.25, 3e-7), scale=0.1 + 0.2, up_axis=up_axis)
    grid = read_binvox(path, up_axis=up_axis)
    np.testing.assert_array_equal(grid.voxels, voxels)
    assert grid.voxels.dtype == np.uint8
    assert grid.dims == (size,) * 3
    assert grid.translate == (-0.1, 0.25, 3e-7)
    assert grid.scale == 0.1 + 0.2


@pytest.mark.parametrize("fill_value", (0, 1))
def test_round_trip_of_uniform_grids(tmp_path, fill_value):
    voxels = np.full((32, 32, 32), fill_value, dtype=bool)
    path = tmp_path / "uniform.binvox"
    write_binvox(path, voxels)
    np.testing.assert_array_equal(read_binvox(path).voxels, voxels.astype(np.uint8))
    # 32768 voxels in one run need 128 full pairs and one of 128.
    assert path.stat().st_size == len(HEADER_4.replace(b"4", b"32")) + 2 * 129


# Headers as real files carry them. binvox's own reader skips a line from a word it does not
# know, so comment lines and comments after a value are read past, as here.
WILD_HEADERS = {
    "comment_lines": b"#binvox 1\n# written by binvox 1.38\n# dim 8 8 8 was the old size\n"
                     b"dim 4 4 4\ntranslate 0.5 -0.25 2\n#\nscale 0.75\ndata\n",
    "trailing_comments": b"#binvox 1 # version\ndim 4 4 4 # depth width height\n"
                         b"translate 0.5 -0.25 2# origin\nscale 0.75\t# side\ndata # runs follow\n",
    "crlf": b"#binvox 1\r\ndim 4 4 4\r\ntranslate 0.5 -0.25 2\r\nscale 0.75\r\ndata\r\n",
    "extra_whitespace": b"#binvox   1  \n\n  dim\t4  4 4 \n\ntranslate 0.5\t-0.25 2 \n"
                        b"scale   0.75\ndata\n",
    "many_and_long_comments": b"#binvox 1\n" + b"# a comment line\n" * 40
                              + b"# " + b"long " * 600 + b"\ndim 4 4 4\ntranslate 0.5 -0.25 2\n"
                              b"scale 0.75\ndata\n",
}


@pytest.mark.parametrize("header", WILD_HEADERS.values(), ids=WILD_HEADERS.keys())
def test_headers_with_comments_whitespace_and_crlf_are_read(tmp_path, header):
    grid = read_binvox(_write_bytes(tmp_path, header + RUNS_4), up_axis="z")
    np.testing.assert_array_equal(grid.voxels, _grid_with(SET_VOXELS_BINVOX))
    assert grid.dims == (4, 4, 4)
    assert grid.translate == (0.5, -0.25, 2.0) and grid.scale == 0.75


def test_reads_from_a_file_object():
    buffer = io.BytesIO()
    voxels = _grid_with(SET_VOXELS_BINVOX)
    write_binvox(buffer, voxels)
    buffer.seek(0)
    np.testing.assert_array_equal(read_binvox(buffer).voxels, voxels)


def test_up_axis_rotations_are_rotations_not_mirrors():
    rng = np.random.default_rng(0)
    voxels = rng.integers(0, 2, size=(5, 5, 5))
    # np.rot90(axes=(a, b)) turns axis a towards axis b: +y -> +z, and +x -> +z.
    np.testing.assert_array_equal(rotate_to_z_up(voxels, "y"), np.rot90(voxels, 1, axes=(1, 2)))
    np.testing.assert_array_equal(rotate_to_z_up(voxels, "x"), np.rot90(voxels, 1, axes=(0, 2)))
    np.testing.assert_array_equal(rotate_to_z_up(voxels, "z"), voxels)
    for up_axis in UP_AXES:
        np.testing.assert_array_equal(rotate_from_z_up(rotate_to_z_up(voxels, up_axis), up_axis),
                                      voxels)


# ---------------------------------------------------------------------------------------------
# Errors: each names the file.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data, message", [
    (b"#vox 1\ndim 4 4 4\ndata\n" + RUNS_4, "bad header: the first line"),
    (b"", "bad header: the first line"),
    (b"#binvox 2\ndim 4 4 4\ndata\n" + RUNS_4, "only version 1"),
    (b"#binvox 1\ndim 4 4 4\ntranslate 0 0 0\n", "ends before the 'data' line"),
    (b"#binvox 1\ndim 4 4 4\ncolour red\ndata\n" + RUNS_4, "unknown line"),
    (b"#binvox 1\ndim 4 4 4 # 8 8 8\n# data\n" + RUNS_4, "unknown line"),
    (b"#binvox # 1\ndim 4 4 4\ndata\n" + RUNS_4, "bad header: the first line"),
    (b"#binvox 2 # merged\ndim 4 4 4\ndata\n" + RUNS_4, "format version '2'; only version 1"),
    (b"#binvox 1\ndim 4 4\ndata\n" + RUNS_4, "'dim 4 4' should be followed by 3 integers"),
    (b"#binvox 1\ndim 4 4 four\ndata\n" + RUNS_4, "should be followed by 3 integers"),
    (b"#binvox 1\ntranslate 0 0 0\nscale 1\ndata\n" + RUNS_4, "'dim D W H' line is missing"),
    (b"#binvox 1\ndim 4 4 4\ndim 4 4 4\ndata\n" + RUNS_4, "'dim' appears twice"),
    (b"#binvox 1\ndim 4 4 4\nscale nan\ndata\n" + RUNS_4, "not finite"),
    (b"#binvox 1\ndim 32 32 64\ndata\n" + RUNS_4, r"dims \(32, 32, 64\) are not cubic"),
    (HEADER_4 + RUNS_4[:-1], "truncated data: 15 bytes"),
    (HEADER_4 + RUNS_4[:-2], "truncated data: the run lengths add up to 52 voxels"),
    (HEADER_4 + RUNS_4 + bytes([0, 1]), "add up to 65 voxels, more than the 64"),
    (HEADER_4 + bytes([2, 64]), r"value bytes \[2\]"),
    (HEADER_4 + bytes([1, 0]) + RUNS_4, "count 0"),
])
def test_malformed_files_raise_value_error_naming_the_file(tmp_path, data, message):
    path = _write_bytes(tmp_path, data, name="broken_model.binvox")
    with pytest.raises(ValueError, match=message) as raised:
        read_binvox(path)
    assert "broken_model.binvox" in str(raised.value)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.binvox"):
        read_binvox(tmp_path / "nothing.binvox")


@pytest.mark.parametrize("voxels, message", [
    (np.zeros((4, 4, 5)), r"shape \(4, 4, 5\)"),
    (np.zeros((2, 4, 4, 4)), "not a batch"),
    (np.full((4, 4, 4), 0.5), r"values \[0.5\] besides 0 and 1"),
    (np.full((4, 4, 4), 255, dtype=np.uint8), "threshold it first"),
])
def test_write_rejects_grids_that_are_not_cubic_and_binary(tmp_path, voxels, message):
    with pytest.raises(ValueError, match=message):
        write_binvox(tmp_path / "out.binvox", voxels)


@pytest.mark.parametrize("keyword, value, message", [
    ("scale", 0.0, "scale must be a finite number > 0"),
    ("scale", float("inf"), "scale must be a finite number > 0"),
    ("translate", (0.0, 1.0), "translate must be three finite numbers"),
    ("up_axis", "-z", "up_axis must be one of"),
])
def test_write_rejects_bad_header_values(tmp_path, keyword, value, message):
    with pytest.raises(ValueError, match=message):
        write_binvox(tmp_path / "out.binvox", np.zeros((4, 4, 4)), **{keyword: value})

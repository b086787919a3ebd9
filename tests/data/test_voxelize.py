"""Tests for mesh voxelization (tf3dgan.data.voxelize).

Expected volumes. The solid is the surface voxels plus the voxels the surface encloses, so a
voxel is occupied when its cell meets the shape: the expected count is the volume of the
shape grown by one voxel cell, which is V + 1/2 * S1 to first order (Steiner's formula for
the Minkowski sum with the unit cube), where S1 = integral of |nx| + |ny| + |nz| over the
surface. The expected surface count is S1 itself: a plane with unit normal n meets
|nx| + |ny| + |nz| cells per unit area. In voxel units,
    sphere of radius r:          V = 4/3 pi r^3,     S1 = 6 pi r^2
    torus of radii R (ring), r:  V = 2 pi^2 R r^2,   S1 = (8 pi + 32) R r   (axis along z).

Tolerances, at 32^3 (sphere r = 16, torus R = 11.4, r = 4.6 voxels):
- Solid within 3% of V + S1/2. The neglected second-order terms are about 0.5% here
  (6r + 1 voxels for the sphere); the faceted meshes lie inside the true shapes by less than
  0.05 voxel (under 0.5% of the volume); and the surface voxels the sampler misses (at most
  about 4% of the surface, measured against exact sets) cost under 1% of the solid, because
  only those whose centre lies outside are not restored by the fill.
- Surface between -8% and +2% of S1. Curvature puts the exact number of cells the surface
  meets 1-2% below the first-order S1 (computed cell by cell for these two shapes: sphere
  4760 against 4825, torus 2936 against 2985), and the sampler misses up to 4% more (cells
  the surface clips by less than a sample spacing). It never marks a cell the surface does
  not meet, hence the small upper margin.
Measured: sphere solid -0.13%, surface -2.9%; torus solid -0.9%, surface -4.5%. Against the
plain volume V the solid is +14% (sphere) and +30% (torus): the half-voxel skin. The cube
and an axis-aligned box are exact, cell for cell.
"""

import io
import math
import pickle

import numpy as np
import pytest
import trimesh

from tf3dgan.data import voxelize as voxelize_module
from tf3dgan.data.voxelize import (
    UnusableShapeError,
    load_mesh,
    repair_off_header,
    voxelize_mesh,
)

R = 32


@pytest.fixture(scope="module")
def sphere():
    return trimesh.creation.icosphere(subdivisions=4, radius=1.0)


@pytest.fixture(scope="module")
def torus():
    return trimesh.creation.torus(major_radius=1.0, minor_radius=0.4, major_sections=64,
                                  minor_sections=32)


def _voxels_per_unit(mesh, resolution=R):
    """The documented placement scales the longest side of the bounding box to R voxels."""
    return resolution / float(np.max(mesh.extents))


def _voxel_centres(mesh, resolution=R):
    """Centres of all voxels [R^3, 3], in the mesh's own (z-up) coordinates."""
    low, high = mesh.bounds
    scale = _voxels_per_unit(mesh, resolution)
    centre = (low + high) / 2
    offset = np.array([resolution / 2 - centre[0] * scale, resolution / 2 - centre[1] * scale,
                       -low[2] * scale])
    index = np.indices((resolution,) * 3).reshape(3, -1).T
    return (index + 0.5 - offset) / scale


def _expected(kind, fill, mesh):
    scale = _voxels_per_unit(mesh)
    if kind == "sphere":
        r = 1.0 * scale
        volume, s1 = 4 / 3 * math.pi * r ** 3, 6 * math.pi * r ** 2
    else:
        ring, r = 1.0 * scale, 0.4 * scale
        volume, s1 = 2 * math.pi ** 2 * ring * r ** 2, (8 * math.pi + 32) * ring * r
    return volume + s1 / 2 if fill == "solid" else s1


# ---------------------------------------------------------------------------------------------
# Volumes and placement.
# ---------------------------------------------------------------------------------------------


def test_cube_fills_the_grid_and_its_surface_is_the_outer_layer():
    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    solid = voxelize_mesh(cube, R, fill="solid")
    surface = voxelize_mesh(cube, R, fill="surface")
    assert solid.dtype == np.uint8 and solid.shape == (R, R, R)
    assert solid.sum() == R ** 3
    outer_layer = np.ones((R, R, R), dtype=np.uint8)
    outer_layer[1:-1, 1:-1, 1:-1] = 0
    np.testing.assert_array_equal(surface, outer_layer)
    assert surface.sum() == R ** 3 - (R - 2) ** 3


def test_box_is_scaled_centred_and_stood_on_the_floor():
    # Extents 1 x 0.62 x 0.37 -> 32 x 19.84 x 11.84 voxels: x spans [0, 32], y is centred on
    # [6.08, 25.92] (voxels 6..25), z stands on the floor at [0, 11.84] (voxels 0..11).
    box = trimesh.creation.box(extents=(1.0, 0.62, 0.37))
    box.apply_translation((5.0, -3.0, 7.0))
    expected = np.zeros((R, R, R), dtype=np.uint8)
    expected[0:32, 6:26, 0:12] = 1
    np.testing.assert_array_equal(voxelize_mesh(box, R), expected)
    expected[1:31, 7:25, 1:11] = 0
    np.testing.assert_array_equal(voxelize_mesh(box, R, fill="surface"), expected)


@pytest.mark.parametrize("fill, low, high", [("solid", -0.03, 0.03), ("surface", -0.08, 0.02)])
@pytest.mark.parametrize("kind", ("sphere", "torus"))
def test_curved_shapes_have_the_expected_volume(request, kind, fill, low, high):
    mesh = request.getfixturevalue(kind)
    count = int(voxelize_mesh(mesh, R, fill=fill).sum())
    expected = _expected(kind, fill, mesh)
    assert low <= count / expected - 1 <= high, (kind, fill, count, expected)


def test_solid_is_surface_plus_voxels_whose_centres_are_inside(torus):
    solid = voxelize_mesh(torus, R).astype(bool)
    surface = voxelize_mesh(torus, R, fill="surface").astype(bool)
    x, y, z = _voxel_centres(torus).T
    inside = (np.hypot(np.hypot(x, y) - 1.0, z) < 0.4).reshape(R, R, R)
    np.testing.assert_array_equal(solid, surface | inside)
    # The hole in the middle of the ring stays empty.
    assert not solid[R // 2 - 2:R // 2 + 2, R // 2 - 2:R // 2 + 2, :].any()


def test_thin_parts_survive_at_64():
    # A plate 0.3 voxel thick on a needle 0.2 voxel wide, both thinner than a voxel.
    plate = trimesh.creation.box(extents=(1.0, 1.0, 0.3 / 64))
    plate.apply_translation((0.0, 0.0, 0.9))
    needle = trimesh.creation.cylinder(radius=0.1 / 64, height=0.9, sections=8)
    needle.apply_translation((0.21, -0.13, 0.45))
    grid = voxelize_mesh(trimesh.util.concatenate([plate, needle]), 64, fill="surface")
    plate_layers = grid[:, :, 57:59].any(axis=2)
    assert plate_layers.all(), "every column under the plate must meet it"
    needle_column = grid[40:46, 20:26, :57]
    assert needle_column.any(axis=(0, 1)).all(), "the needle must be unbroken from the floor"
    assert grid[:, :, :57].sum() <= 2 * 57, "the needle must stay about one voxel wide"


def test_tilted_plane_leaves_no_gap():
    # The square z = 0.37 x + 0.44 y over [0, 1]^2, tilted about two axes. Every row of
    # voxels along x, y or z whose centre line crosses it must hold a marked voxel, or a
    # solid fill could leak through the surface.
    square = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0.37], [1, 1, 0.81], [0, 1, 0.44]],
                             faces=[[0, 1, 2], [0, 2, 3]])
    grid = voxelize_mesh(square, R, fill="surface")
    assert grid.any(axis=2).all()
    centres = (np.arange(R) + 0.5) / R  # 32 voxels per unit, the square starts at 0
    first, second = np.meshgrid(centres, centres, indexing="ij")
    x_crossing = (second - 0.44 * first) / 0.37  # rows along x, at (y, z) = (first, second)
    y_crossing = (second - 0.37 * first) / 0.44  # rows along y, at (x, z) = (first, second)
    assert grid.any(axis=0)[(x_crossing >= 0) & (x_crossing <= 1)].all()
    assert grid.any(axis=1)[(y_crossing >= 0) & (y_crossing <= 1)].all()


# ---------------------------------------------------------------------------------------------
# Meshes that are not watertight.
# ---------------------------------------------------------------------------------------------


def test_overlapping_closed_parts_are_filled_where_they_overlap():
    # A table-like T: a slab and a post that passes into it. Ray parity calls the overlap
    # outside (two crossings); the fill must not.
    slab = trimesh.creation.box(extents=(1.0, 0.83, 0.17))
    slab.apply_translation((0.0, 0.0, 0.61))
    post = trimesh.creation.box(extents=(0.19, 0.23, 0.7))
    post.apply_translation((0.07, -0.05, 0.35))
    mesh = trimesh.util.concatenate([slab, post])
    solid = voxelize_mesh(mesh, R).astype(bool)
    surface = voxelize_mesh(mesh, R, fill="surface").astype(bool)
    centres = _voxel_centres(mesh)
    inside = np.zeros(len(centres), dtype=bool)
    for part in (slab, post):
        low, high = part.bounds
        inside |= np.all((centres > low) & (centres < high), axis=1)
    np.testing.assert_array_equal(solid, surface | inside.reshape(R, R, R))


def test_small_hole_is_still_filled_and_an_open_bowl_stays_hollow(sphere):
    full = int(voxelize_mesh(sphere, R).sum())
    holed = sphere.copy()
    holed.update_faces(np.arange(len(sphere.faces)) != 0)  # one small triangle missing
    assert not holed.is_watertight
    assert voxelize_mesh(holed, R).sum() >= 0.99 * full
    bowl = sphere.copy()
    bowl.update_faces(sphere.triangles_center[:, 2] < 0.8)  # an opening ~10 voxels wide
    np.testing.assert_array_equal(voxelize_mesh(bowl, R), voxelize_mesh(bowl, R, fill="surface"))


# ---------------------------------------------------------------------------------------------
# Orientation.
# ---------------------------------------------------------------------------------------------


def _marked_body(pole, front, side):
    """A cube with a pole and two stubs, each given as (centre, extents)."""
    parts = [trimesh.creation.box(extents=(0.5, 0.5, 0.5))]
    for centre, extents in (pole, front, side):
        part = trimesh.creation.box(extents=extents)
        part.apply_translation(centre)
        parts.append(part)
    return trimesh.util.concatenate(parts)


# The same object in our frame (pole up +z, a stub facing -y, a stub at +x) and as it is
# written in y-up and x-up sources, following the documented rotations:
#   up_axis "y": ours (x, y, z) = source (x, -z, y);  up_axis "x": ours = source (-z, y, x).
OBJECTS = {
    "z": _marked_body(((0, 0, 0.5), (0.125, 0.125, 0.5)), ((0, -0.375, 0), (0.125, 0.25, 0.125)),
                      ((0.375, 0, 0), (0.25, 0.125, 0.125))),
    "y": _marked_body(((0, 0.5, 0), (0.125, 0.5, 0.125)), ((0, 0, 0.375), (0.125, 0.125, 0.25)),
                      ((0.375, 0, 0), (0.25, 0.125, 0.125))),
    "x": _marked_body(((0.5, 0, 0), (0.5, 0.125, 0.125)), ((0, -0.375, 0), (0.125, 0.25, 0.125)),
                      ((0, 0, -0.375), (0.125, 0.125, 0.25))),
}


@pytest.mark.parametrize("up_axis", ("y", "x"))
def test_up_axis_rotates_the_source_onto_our_frame(up_axis):
    expected = voxelize_mesh(OBJECTS["z"], R, up_axis="z")
    np.testing.assert_array_equal(voxelize_mesh(OBJECTS[up_axis], R, up_axis=up_axis), expected)


def test_z_up_object_keeps_its_pole_on_top_and_its_front_at_minus_y():
    grid = voxelize_mesh(OBJECTS["z"], R)
    # Extents 0.75 x 0.75 x 1.0 -> 32 voxels per unit; the pole's footprint is x in [10, 14],
    # y in [18, 22]; the front stub reaches y = 4 at z in [6, 10].
    top_x, top_y = np.nonzero(grid[:, :, R - 1])
    assert top_x.min() >= 10 and top_x.max() <= 14 and top_y.min() >= 18 and top_y.max() <= 22
    front_x, front_z = np.nonzero(grid[:, 4, :])
    assert len(front_x) and front_z.min() >= 6 and front_z.max() <= 10
    assert not grid[:, :4, :].any() and grid[:, :, 0].any()


# ---------------------------------------------------------------------------------------------
# File formats.
# ---------------------------------------------------------------------------------------------


def _two_boxes():
    top = trimesh.creation.box(extents=(1.0, 0.5, 0.25))
    leg = trimesh.creation.box(extents=(0.25, 0.25, 0.75))
    return top, leg, trimesh.transformations.translation_matrix((0.25, 0.125, 0.5))


@pytest.mark.parametrize("extension", ("off", "obj", "stl", "ply"))
def test_mesh_formats_give_the_same_grid(tmp_path, extension):
    top, leg, transform = _two_boxes()
    mesh = trimesh.util.concatenate([top, leg.copy().apply_transform(transform)])
    path = tmp_path / f"model.{extension}"
    mesh.export(path)
    np.testing.assert_array_equal(voxelize_mesh(path, R), voxelize_mesh(mesh, R))


@pytest.mark.parametrize("extension", ("off", "obj", "stl", "ply", "glb"))
def test_a_file_object_named_like_an_archive_member_is_read(extension):
    # The name of an archive member read into memory is not a path on disk; trimesh must not
    # look for side files beside it ("path ... not a directory!").
    mesh = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    exported = mesh.export(file_type=extension)
    data = io.BytesIO(exported.encode() if isinstance(exported, str) else exported)
    data.name = f"/nowhere/ModelNet10.zip:ModelNet10/chair/train/chair_0001.{extension}"
    np.testing.assert_array_equal(voxelize_mesh(data, R), voxelize_mesh(mesh, R))


def test_glb_scene_geometries_are_concatenated_with_their_transforms(tmp_path):
    top, leg, transform = _two_boxes()
    scene = trimesh.Scene()
    scene.add_geometry(top, node_name="top")
    scene.add_geometry(leg, node_name="leg", transform=transform)
    scene.add_geometry(trimesh.PointCloud([[5.0, 5.0, 5.0]]), node_name="stray_points")
    path = tmp_path / "table.glb"
    scene.export(path)
    expected = voxelize_mesh(trimesh.util.concatenate([top, leg.copy().apply_transform(transform)]),
                             R)
    np.testing.assert_array_equal(voxelize_mesh(path, R), expected)
    np.testing.assert_array_equal(voxelize_mesh(scene, R), expected)


def _modelnet_off(mesh) -> bytes:
    """An .off file as ModelNet writes many: the counts glued to the keyword, 'OFF8 12 0'."""
    text = trimesh.exchange.off.export_off(mesh)
    assert text.startswith("OFF\n")
    return ("OFF" + text[len("OFF\n"):]).encode()


def test_modelnet_off_with_glued_header_is_read(tmp_path, torus):
    data = _modelnet_off(torus)
    assert data.startswith(b"OFF%d %d 0\n" % (len(torus.vertices), len(torus.faces)))
    path = tmp_path / "toilet_0001.off"
    path.write_bytes(data)
    expected = voxelize_mesh(torus, R)
    np.testing.assert_array_equal(voxelize_mesh(path, R), expected)
    # From a file object too, as when streaming an archive's members.
    np.testing.assert_array_equal(voxelize_mesh(io.BytesIO(data), R, file_type="off"), expected)


@pytest.mark.parametrize("data, repaired", [
    (b"OFF490 518 0\n0 0 0\n", b"OFF 490 518 0\n0 0 0\n"),
    (b"COFF12 3 0\r\n", b"COFF 12 3 0\r\n"),
    (b"  OFF3 1 0\n", b"  OFF 3 1 0\n"),
    # Valid headers are left as they are.
    (b"OFF 8 12 0\n", b"OFF 8 12 0\n"),
    (b"OFF\t8 12 0\r\n", b"OFF\t8 12 0\r\n"),
    (b"OFF\n490 518 0\n", b"OFF\n490 518 0\n"),
    (b"OFF\r\n# comment\n8 12 0\n", b"OFF\r\n# comment\n8 12 0\n"),
])
def test_repair_off_header(data, repaired):
    # trimesh 5.2 reads glued headers itself, older trimesh 4 releases do not: the repair
    # keeps the reader independent of the version.
    assert repair_off_header(data) == repaired


# A cube of 6 quads, as "OFF 8 6 0" files hold it; trimesh splits each quad into 2 triangles.
_CUBE_VERTICES = ["0 0 0", "1 0 0", "1 1 0", "0 1 0", "0 0 1", "1 0 1", "1 1 1", "0 1 1"]
_CUBE_FACES = ["4 0 3 2 1", "4 4 5 6 7", "4 0 1 5 4", "4 1 2 6 5", "4 2 3 7 6", "4 3 0 4 7"]
_CUBE_BODY = "\n".join(_CUBE_VERTICES + _CUBE_FACES) + "\n"

# Valid .off files as other tools write them, and ModelNet's broken header: each must load
# to the same cube.
WILD_OFF_FILES = {
    "plain": "OFF\n8 6 0\n" + _CUBE_BODY,
    "counts_on_the_header_line": "OFF 8 6 0\n" + _CUBE_BODY,
    "counts_on_the_header_line_then_a_comment": "OFF 8 6 0\n# a cube\n" + _CUBE_BODY,
    "comment_lines": "# made by hand\nOFF\n# counts:\n8 6 0\n# vertices\n"
                     + "\n".join(_CUBE_VERTICES) + "\n# faces\n" + "\n".join(_CUBE_FACES) + "\n",
    "trailing_comments": "OFF # keyword\n8 6 0 # vertices faces edges\n"
                         + "".join(line + " # v\n" for line in _CUBE_VERTICES)
                         + "\n".join(_CUBE_FACES) + "\n",
    "blank_lines_and_spaces": "\n  OFF  \n\n   8   6   0  \n\n"
                              + _CUBE_BODY.replace(" ", "   ").replace("\n", "  \n\n") + "\n\n",
    "crlf": ("OFF\n8 6 0\n# a cube\n" + _CUBE_BODY).replace("\n", "\r\n"),
    "tabs": "OFF\t8\t6\t0\n" + _CUBE_BODY.replace(" ", "\t"),
    "modelnet_glued": "OFF8 6 0\n" + _CUBE_BODY,
    "modelnet_glued_comment_crlf": ("OFF8 6 0\n# from ModelNet\n" + _CUBE_BODY
                                    ).replace("\n", "\r\n"),
}


@pytest.mark.parametrize("text", WILD_OFF_FILES.values(), ids=WILD_OFF_FILES.keys())
def test_off_variants_found_in_the_wild_load_to_the_same_mesh(tmp_path, text):
    path = tmp_path / "cube.off"
    path.write_bytes(text.encode())
    reference = trimesh.Trimesh(
        vertices=[[float(v) for v in line.split()] for line in _CUBE_VERTICES],
        faces=trimesh.geometry.triangulate_quads(
            [[int(i) for i in line.split()[1:]] for line in _CUBE_FACES]), process=False)
    # From a path, and from a file object as an archive's members are read.
    for source in (path, io.BytesIO(text.encode())):
        mesh = load_mesh(source, file_type="off")
        assert (len(mesh.vertices), len(mesh.faces)) == (8, 12)
        np.testing.assert_array_equal(mesh.vertices, reference.vertices)
        np.testing.assert_array_equal(mesh.faces, reference.faces)


def test_load_mesh_keeps_the_file_name_for_later_errors(tmp_path):
    path = tmp_path / "bed_0001.off"
    path.write_bytes(_modelnet_off(trimesh.creation.box()))
    mesh = load_mesh(path)
    assert mesh.metadata["source"] == repr(str(path))
    assert len(mesh.faces) == 12


# ---------------------------------------------------------------------------------------------
# Unusable shapes: a dedicated error naming the file and the reason.
# ---------------------------------------------------------------------------------------------


def _truncated_off():
    data = trimesh.exchange.off.export_off(trimesh.creation.box()).encode()
    return data[:len(data) // 2]


BAD_FILES = [
    ("empty.off", b"", "could not read it as .off"),
    ("empty.obj", b"", "holds no geometry"),
    ("truncated.off", _truncated_off(), "could not read it as .off"),
    ("corrupt.glb", b"glTF\x02\x00\x00\x00garbage", "could not read it as .glb"),
    ("points.ply", trimesh.PointCloud(np.eye(3)).export(file_type="ply"), "no triangle faces"),
    ("points.off", b"OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n", "no triangle faces"),
    ("wireframe.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nl 1 2\nl 2 3\nl 3 1\n", "no triangle faces"),
    ("degenerate.off", b"OFF\n3 2 0\n0 0 0\n1 1 1\n2 2 2\n3 0 1 2\n3 2 1 0\n", "zero area"),
    ("bad_index.off", b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "could not read it"),
    ("scan.foo", b"solid\n", "not a format trimesh can read"),
]


@pytest.mark.parametrize("name, data, reason", BAD_FILES, ids=[entry[0] for entry in BAD_FILES])
def test_unusable_files_raise_naming_the_file_and_the_reason(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(UnusableShapeError, match=reason) as raised:
        voxelize_mesh(path, R)
    error = raised.value
    assert isinstance(error, ValueError)
    assert error.source == repr(str(path)) and str(path) in str(error)
    # A dataset builder may collect errors across processes.
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


def test_in_memory_mesh_with_nan_vertices_is_unusable():
    mesh = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]], faces=[[0, 1, 2]],
                           process=False)
    with pytest.raises(UnusableShapeError, match="<in-memory Trimesh>: .*non-finite"):
        voxelize_mesh(mesh, R)


def test_an_empty_voxelization_is_never_returned(monkeypatch, tmp_path):
    path = tmp_path / "cube.stl"
    trimesh.creation.box().export(path)
    monkeypatch.setattr(voxelize_module, "_mark_surface",
                        lambda triangles, resolution: np.zeros((resolution,) * 3, dtype=bool))
    with pytest.raises(UnusableShapeError, match=r"cube.stl': its solid voxelization .* empty"):
        voxelize_mesh(path, R)


# ---------------------------------------------------------------------------------------------
# Caller errors are not "unusable shape" errors.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keyword, value, message", [
    ("resolution", 0, "resolution must be an integer >= 1, got 0"),
    ("resolution", 32.0, "resolution must be an integer >= 1, got 32.0"),
    ("fill", "hollow", "fill must be one of"),
    ("up_axis", "-y", "up_axis must be one of"),
])
def test_bad_arguments_raise_plain_value_errors(keyword, value, message):
    arguments = {"resolution": R, keyword: value}
    with pytest.raises(ValueError, match=message) as raised:
        voxelize_mesh(trimesh.creation.box(), **arguments)
    assert not isinstance(raised.value, UnusableShapeError)


def test_missing_file_unnamed_file_object_and_wrong_type(tmp_path):
    with pytest.raises(FileNotFoundError, match="chair_0001.off"):
        voxelize_mesh(tmp_path / "chair_0001.off", R)
    with pytest.raises(ValueError, match="Pass file_type="):
        voxelize_mesh(io.BytesIO(b"OFF\n"), R)
    with pytest.raises(TypeError, match="got list"):
        voxelize_mesh([[0, 0, 0]], R)

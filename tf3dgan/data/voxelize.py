"""Voxelizing triangle meshes (.off, .obj, .stl, .ply, .glb, ...) into our occupancy grids.

Meshes are read with trimesh; a file holding a scene of several geometries is flattened
into one mesh with each geometry's scene transform applied. ModelNet's .off files whose
counts are glued to the keyword (``OFF490 518 0`` on the first line) are repaired in memory,
and .off comments (``#`` to the end of a line) are removed before trimesh sees them: its
comment stripping repeats the text before the first ``#`` when that spans lines, so a valid
file with a comment below its counts line would not load. Any other valid .off (counts on
the keyword's line, blank lines, extra spaces or tabs, CRLF) is passed on unchanged.

Placement. The mesh is rotated so that its ``up_axis`` becomes our +z (the proper rotations
of :data:`tf3dgan.data.binvox.UP_AXIS_ROTATIONS`, never a mirror), then scaled uniformly so
that its longest bounding-box side spans the whole grid (R voxels; the aspect ratio is kept
and no part falls outside), centred in x and y, and stood on the floor: its lowest point is
at z = 0, so it touches index 0 of axis 2, like :mod:`tf3dgan.data.synthetic`'s shapes.
(binvox's ``-cb`` option, used for ``../shared/data``, centres objects vertically instead.)

Surface. A voxel is marked when a sample point of the surface falls in it. Each triangle is
sampled on a lattice whose points are at most ``SAMPLE_SPACING`` (1/8 voxel) apart along its
edges; the lattice is divided along each edge by that edge's own length, so that the long
thin slivers common in CAD meshes cost a row of points, not a square of them. Every point of
the surface is then within 2 * SAMPLE_SPACING of a sample (0.09 voxel at most, measured on
random triangles), so parts thinner than a voxel are never lost, and a voxel that the
surface meets is missed only when the surface just clips a corner or an edge of it. Measured
against the exact set of voxels that an analytic sphere or torus surface meets, 1.5% and
3.3% of them are missed at 32^3, 3.6% and 3.7% at 64^3; an axis-aligned box gives the exact
set. Voxelizing a 64^3 shape takes about 0.1-0.6 s on one core.

Solid. The surface grid plus every empty region of the grid that it encloses
(``scipy.ndimage.binary_fill_holes``: the empty voxels that cannot be reached from outside
the grid through voxel faces are filled). Samples are closer than half a voxel, so every
face-connected path of voxels that crosses the surface meets a marked voxel: for a closed
surface the result is exactly the voxels whose centres are inside plus the surface voxels,
about half a voxel wider than the shape all round (tests/data/test_voxelize.py measures it).
It does not need a watertight mesh: a shape made of overlapping closed parts, or with holes
and cracks that its surface voxels close up (about a voxel or less), is filled where it is
enclosed, while a shape with a wider opening (a bowl) stays hollow. Measured alternatives:
ray parity calls the overlap of two closed parts outside and leaks through small holes, and
the generalized winding number fills open bowls.

Bad input raises :class:`UnusableShapeError` (a ValueError) naming the file and the reason,
so that a dataset builder can report the file and skip it. A grid is never returned empty.
"""

from __future__ import annotations

import io
import operator
import os
import re
from typing import BinaryIO

import numpy as np
import trimesh
from scipy import ndimage

from tf3dgan.data.binvox import UP_AXIS_ROTATIONS, check_up_axis

FILL_MODES: tuple[str, ...] = ("solid", "surface")

# Largest distance, in voxels, between neighbouring surface samples along a triangle's edges.
SAMPLE_SPACING = 0.125

# Surface samples generated per batch: about 30 MB of temporaries.
_POINTS_PER_BATCH = 1 << 18

# "OFF" or "COFF" with the counts glued to it, no whitespace between: ModelNet's broken
# header. "OFF 8 6 0" (counts after a space, on the same line) is valid OFF and not matched.
_GLUED_OFF_HEADER = re.compile(rb"\A(\s*C?OFF)(?=[-+0-9])")

# An .off comment, from '#' to the end of its line (LF, CRLF or CR); the line end is kept.
_OFF_COMMENT = re.compile(rb"#[^\r\n]*")


class UnusableShapeError(ValueError):
    """A mesh that cannot be turned into a voxel grid; a dataset builder should skip it.

    Attributes:
        source: The file (or a description of the in-memory mesh).
        reason: Why it cannot be used.
    """

    def __init__(self, source: str, reason: str):
        super().__init__(source, reason)
        self.source = source
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


def load_mesh(source: str | os.PathLike | BinaryIO | trimesh.Trimesh | trimesh.Scene, *,
              file_type: str | None = None,
              resolver: trimesh.resolvers.Resolver | None = None) -> trimesh.Trimesh:
    """Load a mesh file (or take a trimesh object) as one triangle mesh ready to voxelize.

    Args:
        source: A path to a file trimesh can read (.off, .obj, .stl, .ply, .glb, ...); a
            binary file object (e.g. a member of an archive); or a ``trimesh.Trimesh`` or
            ``trimesh.Scene``. Scenes are flattened into one mesh with each geometry's
            transform applied; point clouds and paths in them are ignored.
        file_type: The format ("off", "obj", ...) when it cannot be taken from the name's
            extension, e.g. for a file object without a ``name``.
        resolver: Where the side files that the mesh refers to (an .obj's .mtl, a .gltf's
            .bin buffers) are read from, e.g. beside an archive member inside its archive.
            None: the mesh's folder for a path, and for a file object the folder of its
            ``name`` if that is a folder, else nowhere (the mesh loads without them, or,
            when its geometry is in them, is unusable).

    Returns:
        A ``trimesh.Trimesh`` with at least one face, finite vertices and positive area,
        whose ``metadata["source"]`` names where it came from.

    Raises:
        FileNotFoundError: if a path is given and does not exist.
        TypeError: if ``source`` is none of the accepted types.
        ValueError: if the format of a file object is unknown and ``file_type`` is not given.
        UnusableShapeError: naming the file, if it is corrupt, truncated or in a format
            trimesh cannot read, or holds no faces (empty, a point cloud, a wireframe),
            non-finite vertices, or only faces of zero area.
    """
    if isinstance(source, (trimesh.Trimesh, trimesh.Scene)):
        name = _describe(source)
        scene = source if isinstance(source, trimesh.Scene) else trimesh.Scene(source)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Mesh file {path!r} does not exist.")
        name = repr(path)
        scene = _read_scene(path, path, name, file_type, resolver)
    elif hasattr(source, "read"):
        file_name = getattr(source, "name", None)
        file_name = os.fsdecode(file_name) if isinstance(file_name, (str, bytes)) else None
        name = repr(file_name) if file_name else f"<{type(source).__name__}>"
        if file_type is None and not file_name:
            raise ValueError(
                f"Cannot tell the format of {name}: it has no name. Pass file_type=, "
                "e.g. file_type='off'.")
        scene = _read_scene(source, file_name or "", name, file_type, resolver)
    else:
        raise TypeError(
            f"source must be a path, a binary file object, a trimesh.Trimesh or a "
            f"trimesh.Scene, got {type(source).__name__}; load other mesh types with "
            "trimesh first.")

    vertices, faces = _flatten(scene, name)
    triangles = vertices[faces]
    if not np.isfinite(triangles).all():
        raise UnusableShapeError(name, "its faces use non-finite (NaN or infinite) vertices.")
    areas = np.linalg.norm(np.cross(triangles[:, 1] - triangles[:, 0],
                                    triangles[:, 2] - triangles[:, 0]), axis=1)
    if not areas.sum() > 0:
        raise UnusableShapeError(
            name, f"all of its {len(faces)} faces have zero area (a degenerate mesh, or a "
            "wireframe stored as faces), so it has no surface to voxelize.")
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    mesh.metadata["source"] = name
    return mesh


def voxelize_mesh(mesh_or_path: str | os.PathLike | BinaryIO | trimesh.Trimesh | trimesh.Scene,
                  resolution: int, *, fill: str = "solid", up_axis: str = "z",
                  file_type: str | None = None,
                  resolver: trimesh.resolvers.Resolver | None = None) -> np.ndarray:
    """Voxelize a mesh into an occupancy grid in our convention.

    Args:
        mesh_or_path: A mesh file (path or binary file object) or a trimesh object, as
            accepted by :func:`load_mesh`.
        resolution: Grid size R, an integer >= 1 (the project uses 32 and 64).
        fill: "solid" (the surface and everything it encloses) or "surface" (only the
            voxels the surface passes through). See the module docstring.
        up_axis: The mesh's up axis, rotated onto our z: "z" (ModelNet), "y" (ShapeNet,
            glTF/.glb) or "x".
        file_type: The file's format when its name does not tell, as in :func:`load_mesh`.
        resolver: Where the mesh's side files are read from, as in :func:`load_mesh`.

    Returns:
        uint8 array [R, R, R] of 0/1, axes (x, y, z), z up: the mesh scaled so that its
        longest side spans the grid, centred in x and y, standing on z = 0. Never empty.

    Raises:
        ValueError: for a bad ``resolution``, ``fill`` or ``up_axis``, or a file object of
            unknown format.
        FileNotFoundError: if a path is given and does not exist.
        TypeError: if ``mesh_or_path`` is none of the accepted types.
        UnusableShapeError: (a ValueError) naming the file and the reason, for any mesh that
            cannot be voxelized: see :func:`load_mesh`; also if the grid comes out empty.
    """
    resolution = _check_resolution(resolution)
    if not isinstance(fill, str) or fill not in FILL_MODES:
        raise ValueError(
            f"fill must be one of {FILL_MODES}, got {fill!r}; use 'solid' for filled shapes "
            "or 'surface' for hollow shells.")
    check_up_axis(up_axis)
    mesh = load_mesh(mesh_or_path, file_type=file_type, resolver=resolver)
    source = mesh.metadata["source"]

    triangles = _place(mesh.vertices[mesh.faces] @ _rotation(up_axis).T, resolution)
    grid = _mark_surface(triangles, resolution)
    if fill == "solid":
        grid = ndimage.binary_fill_holes(grid)
    if not grid.any():
        raise UnusableShapeError(source, f"its {fill} voxelization at {resolution}^3 is empty.")
    return grid.astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Loading.
# ---------------------------------------------------------------------------------------------


def _describe(geometry: trimesh.Trimesh | trimesh.Scene) -> str:
    """Name an in-memory mesh for messages, by the file it was loaded from if known."""
    metadata = getattr(geometry, "metadata", None) or {}
    for key in ("source", "file_path", "file_name"):
        if metadata.get(key):
            return str(metadata[key])
    return f"<in-memory {type(geometry).__name__}>"


def repair_off_header(data: bytes) -> bytes:
    """Separate counts glued to the OFF keyword (``OFF490 518 0``, as in ModelNet) by a space.

    Only that is repaired. Counts after whitespace on the keyword's line (``OFF 8 6 0``) are
    valid OFF and left alone, and no line is added, so that the lines stay as in the file.

    Args:
        data: The bytes of an .off file.

    Returns:
        ``OFF 490 518 0 ...`` for ``OFF490 518 0 ...`` (and ``COFF`` likewise); any other
        ``data`` unchanged.
    """
    return _GLUED_OFF_HEADER.sub(rb"\1 ", data, count=1)


def _without_off_comments(data: bytes) -> bytes:
    """The bytes of an .off file without its comments (each line end is kept)."""
    # Why not let trimesh do it: see the module docstring.
    return _OFF_COMMENT.sub(b"", data) if b"#" in data else data


def _read_scene(file: str | BinaryIO, file_name: str, name: str, file_type: str | None,
                resolver: trimesh.resolvers.Resolver | None) -> trimesh.Scene:
    """Read a mesh file (a path or a file object) into a trimesh Scene.

    Raises UnusableShapeError, naming the file as ``name``, when trimesh cannot read it.
    """
    if resolver is None and not isinstance(file, str):
        # Left to itself, trimesh makes a resolver from a file object's name and raises "not
        # a directory!" for any format but .off when the name is not a path on disk (the
        # "ARCHIVE.zip:MEMBER" names of archive members).
        folder = os.path.dirname(os.path.abspath(file_name)) if file_name else ""
        resolver = (trimesh.resolvers.FilePathResolver(folder) if os.path.isdir(folder)
                    else trimesh.resolvers.ZipResolver({}))  # an empty one: finds nothing
    extension = (file_type or trimesh.util.split_extension(file_name)).lower().lstrip(".")
    if extension not in trimesh.available_formats():
        raise UnusableShapeError(
            name, f"'.{extension}' is not a format trimesh can read; convert it to .off, "
            ".obj, .stl, .ply or .glb.")
    try:
        if extension == "off":
            if isinstance(file, str):
                with open(file, "rb") as opened:
                    data = opened.read()
            else:
                data = file.read()
            data = repair_off_header(_without_off_comments(data))
            return trimesh.load(io.BytesIO(data), file_type="off", force="scene")
        # Given a path and no resolver, trimesh reads side files (.mtl, .bin) beside it.
        return trimesh.load(file, file_type=extension, force="scene", resolver=resolver)
    except Exception as error:  # trimesh's loaders raise many types for a bad file
        raise UnusableShapeError(
            name, f"trimesh could not read it as .{extension} (corrupt or truncated?): "
            f"{type(error).__name__}: {error}") from error


def _flatten(scene: trimesh.Scene, source: str) -> tuple[np.ndarray, np.ndarray]:
    """All triangle geometry of a scene, in world coordinates, as (vertices, faces)."""
    vertex_blocks, face_blocks, found = [], [], []
    offset = 0
    for node in scene.graph.nodes_geometry:
        transform, geometry_name = scene.graph[node]
        geometry = scene.geometry[geometry_name]
        if not isinstance(geometry, trimesh.Trimesh):
            found.append(type(geometry).__name__)
            continue
        found.append(f"Trimesh with {len(geometry.faces)} faces")
        if len(geometry.faces) == 0:
            continue
        vertices = np.asarray(geometry.vertices, dtype=np.float64)
        vertex_blocks.append(trimesh.transformations.transform_points(vertices, transform))
        face_blocks.append(np.asarray(geometry.faces, dtype=np.int64) + offset)
        offset += len(vertices)
    if not found:
        raise UnusableShapeError(
            source, "it holds no geometry (an empty, corrupt or truncated file?).")
    if not face_blocks:
        raise UnusableShapeError(
            source, f"it has no triangle faces (found: {', '.join(found)}); a point cloud or "
            "a wireframe has no surface to voxelize.")
    return np.concatenate(vertex_blocks), np.concatenate(face_blocks)


# ---------------------------------------------------------------------------------------------
# Voxelization.
# ---------------------------------------------------------------------------------------------


def _check_resolution(resolution: int) -> int:
    """Validate the grid size and return it as a plain int."""
    try:
        value = operator.index(resolution)
    except TypeError:
        value = None
    if value is None or value < 1:
        raise ValueError(
            f"resolution must be an integer >= 1, got {resolution!r}; pass 32 or 64 for the "
            "3D-GAN grids.")
    return value


def _rotation(up_axis: str) -> np.ndarray:
    """The 3x3 rotation matrix taking ``up_axis`` to +z, from UP_AXIS_ROTATIONS."""
    source, sign = UP_AXIS_ROTATIONS[up_axis]
    matrix = np.zeros((3, 3))
    matrix[np.arange(3), source] = sign
    return matrix


def _place(triangles: np.ndarray, resolution: int) -> np.ndarray:
    """Scale triangles [F, 3, 3] into voxel units: longest side R, centred in x/y, floor at 0."""
    points = triangles.reshape(-1, 3)
    low, high = points.min(axis=0), points.max(axis=0)
    scale = resolution / float((high - low).max())
    center = (low + high) / 2
    offset = np.array([resolution / 2 - center[0] * scale,
                       resolution / 2 - center[1] * scale,
                       -low[2] * scale])
    return triangles * scale + offset


def _within_group_index(sizes: np.ndarray) -> np.ndarray:
    """0, 1, ..., size - 1 for each entry of ``sizes``, concatenated."""
    starts = np.cumsum(sizes) - sizes
    return np.arange(int(sizes.sum())) - np.repeat(starts, sizes)


def _sample_points(triangles: np.ndarray) -> np.ndarray:
    """Lattice samples [P, 3] of triangles [T, 3, 3] (voxel units), at most SAMPLE_SPACING apart.

    Each triangle is relabelled (a, b, c) with (a, b) its shortest edge, and sampled at
    ``a + (i / n1) (b - a) + (j / n2) (c - a)`` for ``i / n1 + j / n2 <= 1``, with n1 and n2
    the lengths of (a, b) and (a, c) over the spacing, rounded up, plus evenly spaced points
    on the edge (b, c). Dividing each edge by its own length makes a long thin sliver cost
    one row of points, not a square of them.
    """
    lengths = np.stack([np.linalg.norm(triangles[:, 1] - triangles[:, 2], axis=1),
                        np.linalg.norm(triangles[:, 2] - triangles[:, 0], axis=1),
                        np.linalg.norm(triangles[:, 0] - triangles[:, 1], axis=1)], axis=1)
    # Vertex `shortest` is opposite the shortest edge: it becomes c, the edge's ends a and b.
    shortest = lengths.argmin(axis=1)
    order = (shortest[:, None] + np.array([1, 2, 0])) % 3
    rows = np.arange(len(triangles))[:, None]
    triangles, lengths = triangles[rows, order], lengths[rows, order]
    divisions = np.maximum(np.ceil(lengths / SAMPLE_SPACING).astype(np.int64), 1)
    # Edge (a, b) is opposite c, (a, c) opposite b, (b, c) opposite a.
    along_b, along_c, edge = divisions[:, 2], divisions[:, 1], divisions[:, 0]

    # Points in the triangle: row i (0..n1) holds j = 0 .. floor((n1 - i) n2 / n1).
    row_triangle = np.repeat(np.arange(len(triangles)), along_b + 1)
    row = _within_group_index(along_b + 1)
    row_length = (along_b[row_triangle] - row) * along_c[row_triangle] // along_b[row_triangle] + 1
    point_row = np.repeat(np.arange(len(row)), row_length)
    point_triangle = row_triangle[point_row]
    weight_b = row[point_row] / along_b[point_triangle]
    weight_c = _within_group_index(row_length) / along_c[point_triangle]
    # Points on the edge (b, c), which the rows above do not all reach.
    edge_triangle = np.repeat(np.arange(len(triangles)), edge + 1)
    edge_weight = _within_group_index(edge + 1) / edge[edge_triangle]

    point_triangle = np.concatenate([point_triangle, edge_triangle])
    weight_b = np.concatenate([weight_b, 1.0 - edge_weight])
    weight_c = np.concatenate([weight_c, edge_weight])
    a, b, c = (triangles[point_triangle, vertex] for vertex in range(3))
    return a + weight_b[:, None] * (b - a) + weight_c[:, None] * (c - a)


def _mark_surface(triangles: np.ndarray, resolution: int) -> np.ndarray:
    """Bool grid [R, R, R] of the voxels holding a surface sample of any triangle [F, 3, 3]."""
    grid = np.zeros((resolution,) * 3, dtype=bool)
    # Batches of whole triangles with about _POINTS_PER_BATCH samples each, counted by an
    # upper bound: (n1 + 2) (n2 + 2) covers the lattice and the edge whatever the labels.
    lengths = np.linalg.norm(triangles - np.roll(triangles, 1, axis=1), axis=2)
    divisions = np.ceil(np.sort(lengths, axis=1) / SAMPLE_SPACING)
    bound = (divisions[:, 0] + 2) * (divisions[:, 2] + 2)
    batch_of = (np.cumsum(bound) // _POINTS_PER_BATCH).astype(np.int64)
    boundaries = np.flatnonzero(np.diff(batch_of)) + 1
    for group in np.split(triangles, boundaries):
        points = _sample_points(group)
        # Points on the grid's far faces (coordinate R) belong to the last voxel.
        index = np.clip(np.floor(points).astype(np.int64), 0, resolution - 1)
        grid[index[:, 0], index[:, 1], index[:, 2]] = True
    return grid

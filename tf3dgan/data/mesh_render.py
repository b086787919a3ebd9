"""Pictures of triangle meshes without a display or OpenGL: a small NumPy z-buffer rasterizer.

The picture is made to look like :func:`tf3dgan.data.render.render_voxels` of the same shape
voxelized by :func:`tf3dgan.data.voxelize.voxelize_mesh`, so that a network trained on one
kind of picture sees the other as the same shape:

- the mesh is placed as ``voxelize_mesh`` places it in an R^3 grid (up axis rotated onto z,
  longest side scaled to R, centred in x and y, standing on z = 0);
- the same orthographic camera (:func:`tf3dgan.data.render.camera_axes`: z up, azimuth 0
  looks at the -y side), the same framing of the bounding box
  (:func:`tf3dgan.data.render.fit_frame`), the same key light, colours, outlines and 2x
  supersampling (:func:`tf3dgan.data.render.compose_image`).

Shading is Lambertian with one normal per face, lit from both sides (mesh files often wind
their faces inconsistently, so a face's normal is turned towards the camera). A triangle
covers the supersampled pixels whose centres fall inside it (with a small tolerance, so no
cracks open between neighbours); all triangles are rasterized at once in chunks of about a
million (triangle, pixel) candidates, and a per-pixel maximum keeps the nearest.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np
import trimesh

from tf3dgan.data import render, voxelize
from tf3dgan.data.binvox import check_up_axis

# (triangle, pixel) candidates tested per chunk: about 50 MB of temporaries.
_CANDIDATES_PER_CHUNK = 1 << 20
# Barycentric slack, so pixel centres on a shared edge are never missed by both triangles.
_EDGE_TOLERANCE = 1e-6
# Ambient and diffuse weights of the voxel renderer's shading, without its occlusion term.
_AMBIENT = 0.38
_DIFFUSE = 0.72


def place_mesh(mesh: trimesh.Trimesh, resolution: int, up_axis: str = "z") -> np.ndarray:
    """The mesh's triangles in the grid frame that ``voxelize_mesh`` would use.

    Args:
        mesh: A triangle mesh (from :func:`tf3dgan.data.voxelize.load_mesh`).
        resolution: Grid size R: the longest side of the mesh becomes R units.
        up_axis: The mesh's up axis, rotated onto z ("x", "y" or "z").

    Returns:
        float64 [F, 3, 3] triangle corners in grid units, axes (x, y, z), z up.

    Raises:
        ValueError: for a bad ``resolution`` or ``up_axis``.
    """
    resolution = voxelize._check_resolution(resolution)
    check_up_axis(up_axis)
    rotation = voxelize._rotation(up_axis)
    triangles = np.asarray(mesh.vertices, dtype=np.float64)[np.asarray(mesh.faces)] @ rotation.T
    return voxelize._place(triangles, resolution)


def render_mesh(mesh_or_path: str | os.PathLike | BinaryIO | trimesh.Trimesh | trimesh.Scene,
                image_size: int = 128, elevation: float = 30.0, azimuth: float = 45.0, *,
                resolution: int = 32, up_axis: str = "z",
                light_direction: Sequence[float] | None = None,
                light_intensity: float = 1.0) -> np.ndarray:
    """Render a shaded picture of a triangle mesh, in the voxel renderer's style.

    Args:
        mesh_or_path: A mesh file (.off, .obj, .stl, .ply, .glb, ...), a binary file object,
            or a trimesh object, as :func:`tf3dgan.data.voxelize.load_mesh` accepts.
        image_size: Width and height of the output in pixels, at least 8.
        elevation: Camera angle above the floor, in degrees.
        azimuth: Camera angle around the up axis, in degrees; 0 looks at the -y side.
        resolution: The grid the mesh is placed in (its longest side spans ``resolution``
            units). Only the framing's zoom cap and the outline threshold (3 grid units)
            depend on it; pass the resolution its voxelization uses so both pictures match.
        up_axis: The mesh's up axis, rotated onto z: "z" (ModelNet), "y" (ShapeNet, glTF) or
            "x".
        light_direction: Vector [3] in grid coordinates towards the key light; None uses the
            voxel renderer's default key light for ``azimuth``.
        light_intensity: Scales the diffuse term, as in ``render_voxels``.

    Returns:
        uint8 RGB array [image_size, image_size, 3].

    Raises:
        FileNotFoundError: if a path is given and does not exist.
        ValueError: for a bad ``image_size``, ``resolution``, ``up_axis`` or light;
            :class:`tf3dgan.data.voxelize.UnusableShapeError` (a ValueError) naming the
            file, for a mesh that cannot be read or has no surface.
    """
    image_size = render.check_image_size(image_size)
    light = render.check_light(light_direction, light_intensity, azimuth)
    mesh = voxelize.load_mesh(mesh_or_path)
    triangles = place_mesh(mesh, resolution, up_axis)
    size = image_size * render.SUPERSAMPLING

    right, up, towards_camera = render.camera_axes(elevation, azimuth)
    view = np.stack([right, up, towards_camera])
    points = triangles.reshape(-1, 3)
    pixels_per_unit, screen_center = render.fit_frame(
        view, np.full(3, float(resolution)), points.min(axis=0), points.max(axis=0), size)

    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    keep = lengths > 0
    triangles, normals = triangles[keep], normals[keep] / lengths[keep, None]
    # Light both sides: turn every normal towards the camera.
    normals *= np.where(normals @ towards_camera < 0, -1.0, 1.0)[:, None]
    shades = (_AMBIENT + _DIFFUSE * light_intensity * np.maximum(normals @ light, 0.0)
              ).astype(np.float32)

    projected = triangles @ view.T
    columns = (projected[..., 0] - screen_center[0]) * pixels_per_unit + size / 2
    rows = size / 2 - (projected[..., 1] - screen_center[1]) * pixels_per_unit
    depth_buffer, shade_buffer = rasterize(np.stack([columns, rows], axis=-1),
                                           projected[..., 2], shades, size)
    return render.compose_image(depth_buffer, shade_buffer, image_size)


def rasterize(corners: np.ndarray, depths: np.ndarray, shades: np.ndarray,
              size: int) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer flat-shaded triangles into a square picture.

    Args:
        corners: float [F, 3, 2] (column, row) of each corner in pixels; pixel (r, c) covers
            [c, c + 1) x [r, r + 1), its centre at (c + 0.5, r + 0.5).
        depths: float [F, 3] depth of each corner, larger nearer.
        shades: float [F] shade of each triangle.
        size: Side of the picture in pixels.

    Returns:
        (depth [size, size] float32, -inf where uncovered; shade [size, size] float32).
    """
    depth_buffer = np.full(size * size, -np.inf, dtype=np.float32)
    shade_buffer = np.zeros(size * size, dtype=np.float32)
    # Pixel-centre ranges each triangle's bounding box covers, clipped to the picture.
    first = np.maximum(np.ceil(corners.min(axis=1) - 0.5), 0).astype(np.int64)
    last = np.minimum(np.floor(corners.max(axis=1) - 0.5), size - 1).astype(np.int64)
    span = np.maximum(last - first + 1, 0)
    counts = span[:, 0] * span[:, 1]
    # Edge functions: barycentric weights of corners 1 and 2 are affine in (column, row).
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    visible = (counts > 0) & (np.abs(area) > 1e-12)
    indices = np.flatnonzero(visible)
    chunk_of = np.cumsum(counts[indices]) // _CANDIDATES_PER_CHUNK
    for chunk in np.split(indices, np.flatnonzero(np.diff(chunk_of)) + 1):
        if len(chunk) == 0:
            continue
        triangle = np.repeat(chunk, counts[chunk])
        starts = np.cumsum(counts[chunk]) - counts[chunk]
        local = np.arange(int(counts[chunk].sum())) - np.repeat(starts, counts[chunk])
        width = span[triangle, 0]
        column = first[triangle, 0] + local % width
        row = first[triangle, 1] + local // width
        x, y = column + 0.5, row + 0.5
        ax, ay = a[triangle, 0], a[triangle, 1]
        weight_b = ((x - ax) * (c[triangle, 1] - ay) - (y - ay) * (c[triangle, 0] - ax)) \
            / area[triangle]
        weight_c = ((b[triangle, 0] - ax) * (y - ay) - (b[triangle, 1] - ay) * (x - ax)) \
            / area[triangle]
        inside = ((weight_b >= -_EDGE_TOLERANCE) & (weight_c >= -_EDGE_TOLERANCE)
                  & (weight_b + weight_c <= 1 + _EDGE_TOLERANCE))
        triangle, weight_b, weight_c = triangle[inside], weight_b[inside], weight_c[inside]
        depth = (depths[triangle, 0] + weight_b * (depths[triangle, 1] - depths[triangle, 0])
                 + weight_c * (depths[triangle, 2] - depths[triangle, 0])).astype(np.float32)
        pixel = row[inside] * size + column[inside]
        np.maximum.at(depth_buffer, pixel, depth)
        nearest = depth >= depth_buffer[pixel]
        shade_buffer[pixel[nearest]] = shades[triangle[nearest]]
    return depth_buffer.reshape(size, size), shade_buffer.reshape(size, size)

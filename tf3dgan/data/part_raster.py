"""Rasterising solid primitives (boxes, vertical cones and cylinders, spheres) into a voxel grid.

The part lists come from :mod:`tf3dgan.data.synthetic`; grid conventions are its own:
axis order (x, y, z), z up, index 0 of axis 2 is the floor.
"""

from __future__ import annotations

import numpy as np

# Part tuples, in metres:
#   ("box", x0, x1, y0, y1, z0, z1)
#   ("cone", center_x, center_y, z0, z1, radius_bottom, radius_top)   (a cylinder when equal)
#   ("sphere", center_x, center_y, center_z, radius)
Part = tuple


def _part_bounds(part: Part) -> tuple[float, float, float, float, float, float]:
    """Axis-aligned bounds (x0, x1, y0, y1, z0, z1) of one part."""
    kind = part[0]
    if kind == "box":
        return part[1:7]
    if kind == "cone":
        _, center_x, center_y, bottom, top, radius_bottom, radius_top = part
        radius = max(radius_bottom, radius_top)
        return (center_x - radius, center_x + radius, center_y - radius, center_y + radius,
                bottom, top)
    _, center_x, center_y, center_z, radius = part
    return (center_x - radius, center_x + radius, center_y - radius, center_y + radius,
            center_z - radius, center_z + radius)


def _index_range(low: float, high: float, size: int) -> tuple[int, int]:
    """Voxel index range [start, stop) whose centres lie in [low, high], at least one voxel.

    Parts thinner than a voxel still get one layer, so legs and poles survive at 16^3.
    """
    start = int(np.ceil(low - 0.5))
    stop = int(np.floor(high - 0.5)) + 1
    if stop <= start:
        start = int(np.floor((low + high) / 2))
        stop = start + 1
    return max(start, 0), min(stop, size)


def rasterize(parts: list[Part], resolution: int, fill: float) -> np.ndarray:
    """Scale parts uniformly into the grid, centre them in xy, stand them on z=0, fill voxels.

    Args:
        parts: Part tuples in metres.
        resolution: Grid size R.
        fill: Fraction (0, 1] of the usable extent taken by the largest object dimension.

    Returns:
        Bool array [R, R, R].
    """
    bounds = np.array([_part_bounds(part) for part in parts], dtype=np.float64)
    low = np.array([bounds[:, 0].min(), bounds[:, 2].min(), bounds[:, 4].min()])
    high = np.array([bounds[:, 1].max(), bounds[:, 3].max(), bounds[:, 5].max()])
    extent = high - low
    # One voxel of margin at 32^3 (two at 64^3) on every side except the floor.
    margin = max(1, resolution // 32)
    usable = np.array([resolution - 2 * margin, resolution - 2 * margin, resolution - margin])
    scale = fill * float(np.min(usable / extent))
    center = (low + high) / 2
    offset = np.array([resolution / 2 - center[0] * scale,
                       resolution / 2 - center[1] * scale,
                       -low[2] * scale])

    grid = np.zeros((resolution,) * 3, dtype=bool)
    coordinates = np.arange(resolution) + 0.5
    for part in parts:
        kind = part[0]
        if kind == "box":
            x0, x1, y0, y1, z0, z1 = (np.array(part[1:7]).reshape(3, 2) * scale
                                      + offset[:, None]).ravel()
            xs = _index_range(x0, x1, resolution)
            ys = _index_range(y0, y1, resolution)
            zs = _index_range(z0, z1, resolution)
            grid[xs[0]:xs[1], ys[0]:ys[1], zs[0]:zs[1]] = True
            continue
        if kind == "cone":
            _, center_x, center_y, bottom, top, radius_bottom, radius_top = part
            center_z = None
        else:
            _, center_x, center_y, center_z, radius_bottom = part
            radius_top = radius_bottom
            bottom, top = center_z - radius_bottom, center_z + radius_bottom
        voxel_x = center_x * scale + offset[0]
        voxel_y = center_y * scale + offset[1]
        z_start, z_stop = _index_range(bottom * scale + offset[2], top * scale + offset[2],
                                       resolution)
        if z_stop <= z_start:
            continue
        slice_z = coordinates[z_start:z_stop]
        if center_z is None:
            height = max(top - bottom, 1e-9) * scale
            fraction = np.clip((slice_z - (bottom * scale + offset[2])) / height, 0.0, 1.0)
            radius = (radius_bottom + (radius_top - radius_bottom) * fraction) * scale
        else:
            dz = slice_z - (center_z * scale + offset[2])
            radius = np.sqrt(np.maximum((radius_bottom * scale) ** 2 - dz ** 2, 0.0))
        distance_squared = ((coordinates[:, None] - voxel_x) ** 2
                            + (coordinates[None, :] - voxel_y) ** 2)
        disk = distance_squared[:, :, None] <= (radius ** 2)[None, None, :]
        # Thin poles would vanish between voxel centres: keep the voxel under the axis.
        axis_x = min(max(int(np.floor(voxel_x)), 0), resolution - 1)
        axis_y = min(max(int(np.floor(voxel_y)), 0), resolution - 1)
        disk[axis_x, axis_y, :] = True
        grid[:, :, z_start:z_stop] |= disk
    return grid

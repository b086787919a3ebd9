"""A contact sheet of (image, shape) pairs: each picture beside a render of its shape."""

from __future__ import annotations

import math

import numpy as np

from tf3dgan.data import image_pairs, render


def contact_sheet(pairs: image_pairs.PairSet, count: int = 24, columns: int = 4) -> np.ndarray:
    """A picture of some pairs: each picture next to a render of the shape it is paired with.

    The shape is rendered from the picture's viewpoint (the default one for photos), so a
    rendered pair should look alike apart from the lighting. Tiles are at least 96 pixels
    (small pictures are enlarged by whole pixels); each shape tile is labelled with its
    class and pair number.

    Args:
        pairs: The pairs.
        count: How many pairs to show, spread evenly over all of them.
        columns: Pairs per row.

    Returns:
        uint8 RGB [rows * (tile + 2) - 2, columns * (2 * tile + 8) - 6, 3].
    """
    from PIL import Image, ImageDraw, ImageFont

    count = min(image_pairs.positive_int(count, "count", "24"), pairs.num_pairs)
    columns = min(image_pairs.positive_int(columns, "columns", "4"), count)
    chosen = np.unique(np.linspace(0, pairs.num_pairs - 1, count).round().astype(np.int64))
    height, width = pairs.images.shape[1:3]
    zoom = max(1, math.ceil(96 / max(height, width)))
    tile = max(height, width) * zoom
    rows = math.ceil(len(chosen) / columns)
    cell_width = 2 * tile + 8  # picture, 2-pixel line, shape, 6-pixel gap
    canvas = np.empty((rows * (tile + 2) - 2, columns * cell_width - 6, 3), np.uint8)
    canvas[:] = render.SEPARATOR_COLOR
    for cell, pair in enumerate(chosen):
        top, left = (cell // columns) * (tile + 2), (cell % columns) * cell_width
        picture = np.repeat(np.repeat(pairs.images[pair], zoom, axis=0), zoom, axis=1)
        canvas[top:top + tile, left:left + tile] = render.BACKGROUND_COLOR.astype(np.uint8)
        canvas[top:top + picture.shape[0], left:left + picture.shape[1]] = picture
        elevation, azimuth = pairs.viewpoints[pair]
        view = {} if np.isnan(elevation) else {"elevation": float(elevation),
                                               "azimuth": float(azimuth)}
        shape = pairs.voxels[pairs.shape_index[pair]]
        canvas[top:top + tile, left + tile + 2:left + 2 * tile + 2] = render.render_voxels(
            shape, tile, **view)
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    for cell, pair in enumerate(chosen):
        top, left = (cell // columns) * (tile + 2), (cell % columns) * cell_width
        name = pairs.class_names[pairs.labels[pairs.shape_index[pair]]]
        draw.text((left + tile + 5, top + 2), f"{name} #{pair}", fill=render.LABEL_COLOR,
                  font=font)
    return np.asarray(picture, dtype=np.uint8).copy()

"""Procedural voxel furniture: the dataset a fresh install trains on without any download.

Every shape is assembled from solid primitives (axis-aligned boxes, vertical cylinders and
cones, and the odd sphere) described in metres, with proportions drawn at random for each
sample. The part list is then scaled uniformly so the object fills most of the grid, centred
in x and y, stood on the floor and rasterised.

Grid conventions, shared with :mod:`tf3dgan.data.render`: axis order (x, y, z), z up, index 0
of axis 2 is the floor. Objects face -y: chair and sofa backs and bed headboards sit at +y.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np

from tf3dgan.data import part_raster
from tf3dgan.data.part_raster import Part

SYNTHETIC_CLASSES: tuple[str, ...] = ("chair", "table", "bed", "sofa", "lamp")

SUPPORTED_RESOLUTIONS: tuple[int, ...] = (16, 32, 64)


def _box(center_x: float, center_y: float, width: float, depth: float,
         bottom: float, top: float) -> Part:
    """Axis-aligned box given its footprint centre and size and its vertical extent."""
    return ("box", center_x - width / 2, center_x + width / 2,
            center_y - depth / 2, center_y + depth / 2, bottom, top)


def _cylinder(center_x: float, center_y: float, radius: float,
              bottom: float, top: float) -> Part:
    """Upright cylinder."""
    return ("cone", center_x, center_y, bottom, top, radius, radius)


def _cone(center_x: float, center_y: float, radius_bottom: float, radius_top: float,
          bottom: float, top: float) -> Part:
    """Upright truncated cone (lamp shades, tapered legs)."""
    return ("cone", center_x, center_y, bottom, top, radius_bottom, radius_top)


def _sphere(center_x: float, center_y: float, center_z: float, radius: float) -> Part:
    """Solid ball."""
    return ("sphere", center_x, center_y, center_z, radius)


def _choose(rng: np.random.Generator, options: Sequence[str], weights: Sequence[float]) -> str:
    """Pick one style name with the given relative weights."""
    probabilities = np.asarray(weights, dtype=np.float64)
    return options[int(rng.choice(len(options), p=probabilities / probabilities.sum()))]


# ---------------------------------------------------------------------------------------------
# Classes. Each builder returns a list of parts in metres; only relative proportions matter
# because the whole object is rescaled to the grid afterwards.
# ---------------------------------------------------------------------------------------------


def _chair_parts(rng: np.random.Generator) -> list[Part]:
    """Dining, kitchen and office chairs: seat, back, legs or a swivel base, optional arms."""
    seat_width = rng.uniform(0.40, 0.56)
    seat_depth = rng.uniform(0.38, 0.52)
    seat_height = rng.uniform(0.40, 0.50)
    seat_thickness = rng.uniform(0.03, 0.09)
    seat_bottom = seat_height - seat_thickness
    back_height = rng.uniform(0.30, 0.60)
    back_thickness = rng.uniform(0.03, 0.08)
    back_top = seat_height + back_height
    leg_thickness = rng.uniform(0.03, 0.07)
    half_width, half_depth = seat_width / 2, seat_depth / 2

    parts = [_box(0.0, 0.0, seat_width, seat_depth, seat_bottom, seat_height)]

    base = _choose(rng, ("square_legs", "round_legs", "swivel"), (0.5, 0.25, 0.25))
    if base in ("square_legs", "round_legs"):
        inset = rng.uniform(0.0, 0.04)
        leg_x = half_width - inset - leg_thickness / 2
        leg_y = half_depth - inset - leg_thickness / 2
        for sign_x in (-1.0, 1.0):
            for sign_y in (-1.0, 1.0):
                if base == "square_legs":
                    parts.append(_box(sign_x * leg_x, sign_y * leg_y, leg_thickness,
                                      leg_thickness, 0.0, seat_bottom))
                else:
                    # Turned legs taper towards the floor.
                    parts.append(_cone(sign_x * leg_x, sign_y * leg_y, leg_thickness * 0.35,
                                       leg_thickness * 0.55, 0.0, seat_bottom))
        if rng.random() < 0.35:
            stretcher_height = rng.uniform(0.08, 0.2)
            stretcher_thickness = leg_thickness * 0.6
            for sign_x in (-1.0, 1.0):
                parts.append(_box(sign_x * leg_x, 0.0, stretcher_thickness, 2 * leg_y,
                                  stretcher_height, stretcher_height + stretcher_thickness))
            parts.append(_box(0.0, 0.0, 2 * leg_x, stretcher_thickness,
                              stretcher_height, stretcher_height + stretcher_thickness))
    else:
        column_radius = rng.uniform(0.02, 0.04)
        foot_height = rng.uniform(0.03, 0.06)
        parts.append(_cylinder(0.0, 0.0, column_radius, foot_height, seat_bottom))
        spread = rng.uniform(0.40, 0.60)
        if rng.random() < 0.6:
            # A cross of two bars reads as the star base of an office chair.
            parts.append(_box(0.0, 0.0, spread, leg_thickness, 0.0, foot_height))
            parts.append(_box(0.0, 0.0, leg_thickness, spread, 0.0, foot_height))
        else:
            parts.append(_cylinder(0.0, 0.0, spread / 2 * 0.8, 0.0, foot_height))

    back_width = seat_width * rng.uniform(0.8, 1.0)
    back_y = half_depth - back_thickness / 2
    back_style = _choose(rng, ("panel", "slats", "rails"), (0.55, 0.25, 0.20))
    if back_style == "panel":
        gap = rng.uniform(0.0, 0.12) if rng.random() < 0.4 else 0.0
        parts.append(_box(0.0, back_y, back_width, back_thickness, seat_height + gap, back_top))
        if gap > 0:
            for sign_x in (-1.0, 1.0):
                parts.append(_box(sign_x * (back_width / 2 - leg_thickness / 2), back_y,
                                  leg_thickness, back_thickness, seat_height, back_top))
    else:
        post_width = max(leg_thickness, 0.04)
        post_x = back_width / 2 - post_width / 2
        for sign_x in (-1.0, 1.0):
            parts.append(_box(sign_x * post_x, back_y, post_width, back_thickness,
                              seat_height, back_top))
        rail_height = rng.uniform(0.05, 0.12)
        parts.append(_box(0.0, back_y, back_width, back_thickness,
                          back_top - rail_height, back_top))
        inner_width = 2 * post_x - post_width
        if back_style == "slats":
            slat_count = int(rng.integers(2, 5))
            slat_width = inner_width / (2 * slat_count + 1)
            for slat in range(slat_count):
                slat_x = -inner_width / 2 + slat_width * (2 * slat + 1.5)
                parts.append(_box(slat_x, back_y, slat_width, back_thickness * 0.8,
                                  seat_height, back_top - rail_height))
        else:
            rail_count = int(rng.integers(1, 3))
            for rail in range(rail_count):
                rail_z = seat_height + (back_height - rail_height) * (rail + 1) / (rail_count + 1)
                parts.append(_box(0.0, back_y, inner_width, back_thickness * 0.8,
                                  rail_z - rail_height / 2, rail_z + rail_height / 2))

    if rng.random() < 0.3:
        arm_height = seat_height + rng.uniform(0.16, 0.25)
        arm_thickness = rng.uniform(0.03, 0.05)
        arm_width = rng.uniform(0.04, 0.07)
        arm_x = half_width - arm_width / 2
        arm_front = -half_depth + rng.uniform(0.0, 0.06)
        arm_length = seat_depth - (arm_front + half_depth) - back_thickness
        for sign_x in (-1.0, 1.0):
            parts.append(_box(sign_x * arm_x, arm_front + arm_length / 2, arm_width,
                              arm_length, arm_height - arm_thickness, arm_height))
            parts.append(_box(sign_x * arm_x, arm_front + arm_width, arm_width * 0.8,
                              arm_width * 0.8, seat_height, arm_height - arm_thickness))
    return parts


def _table_parts(rng: np.random.Generator) -> list[Part]:
    """Dining, coffee and side tables: rectangular or round tops on legs, trestles or a pedestal."""
    round_top = rng.random() < 0.3
    if round_top:
        radius = rng.uniform(0.35, 0.65)
        top_width = top_depth = 2 * radius
    else:
        top_width = rng.uniform(0.9, 1.8)
        top_depth = top_width * rng.uniform(0.45, 0.8)
    height = max(top_width, top_depth) * rng.uniform(0.40, 0.75)
    top_thickness = rng.uniform(0.025, 0.08)
    top_bottom = height - top_thickness
    leg_thickness = rng.uniform(0.04, 0.09)

    if round_top:
        parts = [_cylinder(0.0, 0.0, top_width / 2, top_bottom, height)]
        base = _choose(rng, ("pedestal", "legs"), (0.6, 0.4))
    else:
        parts = [_box(0.0, 0.0, top_width, top_depth, top_bottom, height)]
        base = _choose(rng, ("legs", "trestle", "pedestal"), (0.6, 0.2, 0.2))

    if base == "legs":
        inset = rng.uniform(0.02, 0.12) * min(top_width, top_depth)
        if round_top:
            leg_count = int(rng.integers(3, 5))
            leg_radius = top_width / 2 - inset - leg_thickness / 2
            angles = np.arange(leg_count) * 2 * np.pi / leg_count + np.pi / 4
            leg_positions = [(leg_radius * np.cos(a), leg_radius * np.sin(a)) for a in angles]
        else:
            leg_x = top_width / 2 - inset - leg_thickness / 2
            leg_y = top_depth / 2 - inset - leg_thickness / 2
            leg_positions = [(sx * leg_x, sy * leg_y) for sx in (-1, 1) for sy in (-1, 1)]
            if top_width > 1.5 and rng.random() < 0.5:
                # Long tables often carry a middle pair of legs.
                leg_positions += [(0.0, -leg_y), (0.0, leg_y)]
        round_legs = rng.random() < 0.35
        for leg_x_position, leg_y_position in leg_positions:
            if round_legs:
                parts.append(_cylinder(leg_x_position, leg_y_position, leg_thickness / 2,
                                       0.0, top_bottom))
            else:
                parts.append(_box(leg_x_position, leg_y_position, leg_thickness, leg_thickness,
                                  0.0, top_bottom))
        if not round_top and rng.random() < 0.5:
            apron_height = rng.uniform(0.05, 0.12)
            apron_thickness = leg_thickness * 0.5
            for sign_y in (-1.0, 1.0):
                parts.append(_box(0.0, sign_y * leg_y, 2 * leg_x, apron_thickness,
                                  top_bottom - apron_height, top_bottom))
            for sign_x in (-1.0, 1.0):
                parts.append(_box(sign_x * leg_x, 0.0, apron_thickness, 2 * leg_y,
                                  top_bottom - apron_height, top_bottom))
        if not round_top and rng.random() < 0.2:
            shelf_height = rng.uniform(0.08, 0.25) * height
            parts.append(_box(0.0, 0.0, 2 * leg_x, 2 * leg_y, shelf_height,
                              shelf_height + top_thickness * 0.8))
    elif base == "trestle":
        panel_thickness = rng.uniform(0.04, 0.10)
        panel_depth = top_depth * rng.uniform(0.5, 0.8)
        panel_x = top_width / 2 - rng.uniform(0.08, 0.2) * top_width
        foot_height = rng.uniform(0.04, 0.08)
        for sign_x in (-1.0, 1.0):
            parts.append(_box(sign_x * panel_x, 0.0, panel_thickness, panel_depth,
                              0.0, top_bottom))
            parts.append(_box(sign_x * panel_x, 0.0, panel_thickness * 1.5, top_depth * 0.85,
                              0.0, foot_height))
        stretcher_z = rng.uniform(0.15, 0.45) * height
        parts.append(_box(0.0, 0.0, 2 * panel_x, panel_thickness,
                          stretcher_z, stretcher_z + panel_thickness))
    else:
        column_radius = rng.uniform(0.04, 0.10)
        foot_height = rng.uniform(0.03, 0.07)
        foot_size = min(top_width, top_depth) * rng.uniform(0.45, 0.8)
        round_foot = rng.random() < 0.5
        # A single column under a long top looks wrong: long tables get a pair.
        long_top = not round_top and top_width > 1.3
        column_xs = (-0.28 * top_width, 0.28 * top_width) if long_top else (0.0,)
        for column_x in column_xs:
            parts.append(_cylinder(column_x, 0.0, column_radius, 0.0, top_bottom))
            if round_foot:
                parts.append(_cylinder(column_x, 0.0, foot_size / 2, 0.0, foot_height))
            else:
                parts.append(_box(column_x, 0.0, foot_size, leg_thickness, 0.0, foot_height))
                parts.append(_box(column_x, 0.0, leg_thickness, foot_size, 0.0, foot_height))
    return parts


def _bed_parts(rng: np.random.Generator) -> list[Part]:
    """Single to king beds: frame, mattress, headboard at +y, optional footboard and pillows."""
    length = rng.uniform(1.9, 2.2)
    width = rng.uniform(0.9, 1.8)
    mattress_top = rng.uniform(0.40, 0.62)
    mattress_thickness = rng.uniform(0.15, 0.28)
    mattress_bottom = mattress_top - mattress_thickness
    frame_bottom = 0.0
    parts = []
    if rng.random() < 0.5:
        leg_height = rng.uniform(0.08, 0.2) * mattress_bottom / 0.3
        leg_height = min(leg_height, mattress_bottom * 0.7)
        leg_thickness = rng.uniform(0.05, 0.1)
        for sign_x in (-1.0, 1.0):
            for sign_y in (-1.0, 1.0):
                parts.append(_box(sign_x * (width / 2 - leg_thickness / 2),
                                  sign_y * (length / 2 - leg_thickness / 2),
                                  leg_thickness, leg_thickness, 0.0, leg_height))
        frame_bottom = leg_height
    parts.append(_box(0.0, 0.0, width, length, frame_bottom, mattress_bottom))
    inset = rng.uniform(0.0, 0.05)
    parts.append(_box(0.0, 0.0, width - 2 * inset, length - 2 * inset,
                      mattress_bottom, mattress_top))

    headboard_thickness = rng.uniform(0.05, 0.12)
    headboard_top = mattress_top + rng.uniform(0.3, 0.7)
    headboard_width = width * rng.uniform(1.0, 1.08)
    headboard_y = length / 2 + headboard_thickness / 2
    headboard_style = _choose(rng, ("panel", "posts", "wings"), (0.5, 0.3, 0.2))
    parts.append(_box(0.0, headboard_y, headboard_width, headboard_thickness, 0.0, headboard_top))
    has_footboard = rng.random() < 0.5
    footboard_top = mattress_top + rng.uniform(0.0, 0.25)
    footboard_y = -length / 2 - headboard_thickness / 2
    if has_footboard:
        parts.append(_box(0.0, footboard_y, width, headboard_thickness, 0.0, footboard_top))
    if headboard_style == "posts":
        post_size = rng.uniform(0.06, 0.12)
        post_rise = rng.uniform(0.05, 0.25)
        for sign_x in (-1.0, 1.0):
            post_x = sign_x * (headboard_width / 2 - post_size / 2)
            parts.append(_box(post_x, headboard_y, post_size, post_size, 0.0,
                              headboard_top + post_rise))
            if has_footboard:
                parts.append(_box(post_x, footboard_y, post_size, post_size, 0.0,
                                  footboard_top + post_rise))
    elif headboard_style == "wings":
        # Upholstered wings wrap forward around the pillows.
        wing_depth = rng.uniform(0.15, 0.3)
        for sign_x in (-1.0, 1.0):
            parts.append(_box(sign_x * (headboard_width / 2 - headboard_thickness / 2),
                              length / 2 - wing_depth / 2 + headboard_thickness,
                              headboard_thickness, wing_depth, mattress_top, headboard_top))

    if rng.random() < 0.75:
        pillow_count = 1 if width < 1.2 else int(rng.integers(1, 3))
        pillow_height = rng.uniform(0.08, 0.15)
        pillow_depth = rng.uniform(0.3, 0.45)
        pillow_gap = 0.05 * (pillow_count - 1)
        pillow_width = (width - 2 * inset - 0.1 - pillow_gap) / pillow_count
        pillow_y = length / 2 - inset - pillow_depth / 2 - 0.03
        for pillow in range(pillow_count):
            pillow_x = (pillow - (pillow_count - 1) / 2) * (pillow_width + pillow_gap)
            parts.append(_box(pillow_x, pillow_y, pillow_width, pillow_depth,
                              mattress_top, mattress_top + pillow_height))
    return parts


def _sofa_parts(rng: np.random.Generator) -> list[Part]:
    """Two- and three-seat sofas and sectionals: base, cushions, back at +y, usually arms."""
    width = rng.uniform(1.3, 2.5)
    depth = rng.uniform(0.75, 1.05)
    seat_height = rng.uniform(0.36, 0.50)
    back_top = rng.uniform(0.70, 1.05)
    back_thickness = rng.uniform(0.12, 0.30)
    arm_style = _choose(rng, ("none", "low", "tuxedo"), (0.2, 0.6, 0.2))
    arm_width = rng.uniform(0.08, 0.28) if arm_style != "none" else 0.0
    arm_top = back_top if arm_style == "tuxedo" else rng.uniform(0.52, 0.72)
    arm_setback = rng.uniform(0.0, 0.12) if rng.random() < 0.4 else 0.0

    base_bottom = 0.0
    parts = []
    if rng.random() < 0.5:
        leg_height = rng.uniform(0.05, 0.15)
        leg_thickness = rng.uniform(0.05, 0.08)
        for sign_x in (-1.0, 1.0):
            for sign_y in (-1.0, 1.0):
                parts.append(_box(sign_x * (width / 2 - leg_thickness),
                                  sign_y * (depth / 2 - leg_thickness),
                                  leg_thickness, leg_thickness, 0.0, leg_height))
        base_bottom = leg_height
        plinth_setback = 0.0
    else:
        # A recessed plinth leaves a shadow line along the floor.
        plinth_setback = rng.uniform(0.0, 0.06)

    cushion_thickness = rng.uniform(0.08, 0.16)
    base_top = seat_height - cushion_thickness
    parts.append(_box(0.0, plinth_setback / 2, width, depth - plinth_setback,
                      base_bottom, base_top))
    parts.append(_box(0.0, depth / 2 - back_thickness / 2, width, back_thickness,
                      base_bottom, back_top))

    inner_width = width - 2 * arm_width
    seat_count = int(rng.integers(2, 4)) if inner_width > 1.2 else int(rng.integers(1, 3))
    gap = rng.uniform(0.02, 0.05)
    cushion_width = (inner_width - gap * (seat_count - 1)) / seat_count
    back_cushion_thickness = rng.uniform(0.08, 0.16) if rng.random() < 0.5 else 0.0
    cushion_depth = depth - back_thickness - back_cushion_thickness
    back_cushion_top = back_top + rng.uniform(-0.12, 0.06)
    for seat in range(seat_count):
        cushion_x = -inner_width / 2 + cushion_width / 2 + seat * (cushion_width + gap)
        parts.append(_box(cushion_x, -depth / 2 + cushion_depth / 2, cushion_width,
                          cushion_depth, base_top, seat_height))
        if back_cushion_thickness > 0:
            parts.append(_box(cushion_x, depth / 2 - back_thickness - back_cushion_thickness / 2,
                              cushion_width, back_cushion_thickness,
                              seat_height, back_cushion_top))

    if arm_style != "none":
        arm_depth = depth - arm_setback
        for sign_x in (-1.0, 1.0):
            parts.append(_box(sign_x * (width / 2 - arm_width / 2), arm_setback / 2, arm_width,
                              arm_depth, base_bottom, arm_top))

    if rng.random() < 0.15:
        # Sectional: a chaise extends forward under one arm.
        chaise_width = inner_width * rng.uniform(0.3, 0.45)
        chaise_length = rng.uniform(0.5, 0.8)
        sign_x = 1.0 if rng.random() < 0.5 else -1.0
        chaise_x = sign_x * (inner_width / 2 - chaise_width / 2)
        chaise_y = -depth / 2 - chaise_length / 2
        parts.append(_box(chaise_x, chaise_y, chaise_width, chaise_length,
                          base_bottom, seat_height))
    return parts


def _lamp_parts(rng: np.random.Generator) -> list[Part]:
    """Floor and table lamps: a base, a pole and a shade (cone, drum, inverted cone or globe)."""
    pole_height = rng.uniform(0.5, 1.5)
    pole_radius = rng.uniform(0.008, 0.025)
    shade_radius = rng.uniform(0.18, 0.34)
    shade_height = shade_radius * rng.uniform(0.8, 1.6)
    base_height = rng.uniform(0.02, 0.06)
    base_size = rng.uniform(0.10, 0.20)

    parts = []
    base = _choose(rng, ("disk", "square", "dome"), (0.5, 0.25, 0.25))
    if base == "disk":
        parts.append(_cylinder(0.0, 0.0, base_size, 0.0, base_height))
    elif base == "square":
        parts.append(_box(0.0, 0.0, 2 * base_size, 2 * base_size, 0.0, base_height))
    else:
        base_height *= rng.uniform(1.5, 3.0)
        parts.append(_cone(0.0, 0.0, base_size, base_size * 0.3, 0.0, base_height))
    parts.append(_cylinder(0.0, 0.0, pole_radius, base_height, pole_height))

    shade = _choose(rng, ("cone", "drum", "bell", "globe"), (0.4, 0.25, 0.15, 0.2))
    shade_bottom = pole_height - shade_height * rng.uniform(0.3, 0.6)
    if shade == "globe":
        parts.append(_sphere(0.0, 0.0, pole_height, shade_radius * 0.8))
    elif shade == "cone":
        parts.append(_cone(0.0, 0.0, shade_radius, shade_radius * rng.uniform(0.45, 0.75),
                           shade_bottom, shade_bottom + shade_height))
    elif shade == "drum":
        parts.append(_cylinder(0.0, 0.0, shade_radius * 0.85, shade_bottom,
                               shade_bottom + shade_height))
    else:
        # Bell (uplighter): narrow at the pole, flaring upwards.
        parts.append(_cone(0.0, 0.0, shade_radius * rng.uniform(0.3, 0.5), shade_radius,
                           pole_height, pole_height + shade_height * 0.8))
    return parts


_BUILDERS = {
    "chair": _chair_parts,
    "table": _table_parts,
    "bed": _bed_parts,
    "sofa": _sofa_parts,
    "lamp": _lamp_parts,
}


# ---------------------------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------------------------


def _check_resolution(resolution: int) -> int:
    """Validate the grid size and return it as a plain int."""
    try:
        value = operator.index(resolution)
    except TypeError:
        value = None
    if value is None or value not in SUPPORTED_RESOLUTIONS:
        raise ValueError(
            f"resolution must be one of {SUPPORTED_RESOLUTIONS}, got {resolution!r}; "
            f"pass 32 for fast experiments or 64 for the 3D-GAN paper's grid size.")
    return value


def _check_class(class_name: str) -> str:
    """Validate one class name."""
    if class_name not in _BUILDERS:
        raise ValueError(
            f"unknown synthetic class {class_name!r}; accepted names are {SYNTHETIC_CLASSES}. "
            f"Use one of those names (see tf3dgan.data.synthetic.SYNTHETIC_CLASSES).")
    return class_name


def make_shape(class_name: str, resolution: int, rng: np.random.Generator) -> np.ndarray:
    """Generate one random piece of furniture as a voxel grid.

    Args:
        class_name: One of ``SYNTHETIC_CLASSES``.
        resolution: Grid size R, one of 16, 32 or 64.
        rng: Source of all randomness; the same generator state gives the same shape.

    Returns:
        Bool array [R, R, R], axes (x, y, z), z up, standing on z=0 and centred in x and y.

    Raises:
        ValueError: If ``class_name`` or ``resolution`` is not supported.
    """
    builder = _BUILDERS[_check_class(class_name)]
    resolution = _check_resolution(resolution)
    parts = builder(rng)
    fill = rng.uniform(0.88, 1.0)
    return part_raster.rasterize(parts, resolution, fill)


def make_synthetic_dataset(num_per_class: int, resolution: int = 32, seed: int = 0,
                           classes: Sequence[str] | None = None, rotate: bool = False
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Generate a balanced, deterministic dataset of voxel furniture.

    Shapes are interleaved by class (shape i has class ``i % len(classes)``), so any prefix is
    balanced. Shape i is drawn from ``np.random.default_rng([seed, i])`` and therefore does not
    depend on ``num_per_class``.

    Args:
        num_per_class: Number of shapes per class, at least 1.
        resolution: Grid size R, one of 16, 32 or 64.
        seed: Non-negative integer; equal arguments always give bit-identical arrays.
        classes: Class names to generate, in label order; defaults to ``SYNTHETIC_CLASSES``.
            Labels index into this sequence, so they are always 0..len(classes)-1.
        rotate: If True, rotate each shape about the up axis by a random multiple of 90 degrees.

    Returns:
        ``(voxels, labels)``: uint8 array [N, R, R, R] of 0/1 values and int64 array [N], with
        ``N = num_per_class * len(classes)``.

    Raises:
        ValueError: For an unknown class name, an empty or repeated class list, an unsupported
            resolution, ``num_per_class < 1`` or a negative seed.
    """
    try:
        count = operator.index(num_per_class)
    except TypeError:
        count = None
    if count is None or count < 1:
        raise ValueError(
            f"num_per_class must be an integer >= 1, got {num_per_class!r}; "
            f"pass the number of shapes to generate for each class, e.g. 200.")
    resolution = _check_resolution(resolution)
    try:
        seed_value = operator.index(seed)
    except TypeError:
        seed_value = None
    if seed_value is None or seed_value < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}; pass e.g. 0.")
    if classes is None:
        classes = SYNTHETIC_CLASSES
    if isinstance(classes, str):
        raise ValueError(
            f"classes must be a sequence of class names, got the string {classes!r}; "
            f"wrap it in a list, e.g. classes=[{classes!r}].")
    class_names = tuple(_check_class(name) for name in classes)
    if not class_names:
        raise ValueError(
            f"classes is empty; pass None for all of {SYNTHETIC_CLASSES} or a non-empty subset.")
    if len(set(class_names)) != len(class_names):
        raise ValueError(
            f"classes contains repeated names {class_names}; list each class once.")

    total = count * len(class_names)
    voxels = np.empty((total, resolution, resolution, resolution), dtype=np.uint8)
    labels = np.arange(total, dtype=np.int64) % len(class_names)
    for index in range(total):
        rng = np.random.default_rng([seed_value, index])
        shape = make_shape(class_names[labels[index]], resolution, rng)
        if rotate:
            shape = np.rot90(shape, k=int(rng.integers(4)), axes=(0, 1))
        voxels[index] = shape
    return voxels, labels

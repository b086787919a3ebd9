"""The reconstruction benchmark's report: its JSON file, its figure and its table.

The table is Markdown (pipes), so it pastes into a README as it is; the JSON report
holds everything in it and more (see `REPORT_FIELDS` and `tf3dgan.reconstruction`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from tf3dgan import atomic_files
from tf3dgan.recognition_report import markdown_table

REPORT_FILE = "report.json"
FIGURE_FILE = "reconstruction.png"
REPORT_FIELDS = ("task", "created_at", "command", "model", "data", "settings", "threshold_selection",
                 "methods", "per_render", "timings", "files", "environment")
METHOD_FIELDS = ("name", "per_class", "mean_over_classes", "mean_over_renders")
FIGURE_COLUMNS = ("input", "ours", "retrieval", "truth")
TILE_SIZE = 128


def _number(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def table(report: dict) -> str:
    """Per class and overall: IoU and AP of the model and of the retrieval baseline."""
    ours, retrieval = report["methods"]["ours"], report["methods"]["retrieval"]
    chosen = report["threshold_selection"]["chosen"]
    tuned = chosen is not None
    header = ["class", "renders", "ours IoU", "ours AP", "retrieval IoU", "retrieval AP"]
    if tuned:
        header.insert(3, f"ours IoU@{chosen:g}")
    rows = []

    def row(name, count, mine, theirs):
        cells = [name, count, _number(mine["iou"]), _number(mine["ap"]), _number(theirs["iou"]),
                 _number(theirs["ap"])]
        if tuned:
            cells.insert(3, _number(mine.get("iou_tuned")))
        rows.append(cells)

    for name, entry in ours["per_class"].items():
        row(name, entry["count"], entry, retrieval["per_class"][name])
    total = sum(entry["count"] for entry in ours["per_class"].values())
    row("mean (over classes)", total, ours["mean_over_classes"], retrieval["mean_over_classes"])
    data = report["data"]
    renders = data["renders"]
    heading = (f"Reconstruction on {data['name']} {data.get('path') or ''}: {total} test renders of "
               f"{data['splits']['test']['count']} test shapes ({renders['views_per_shape']} views each, "
               f"{renders['image_size']}x{renders['image_size']}), retrieval among "
               f"{renders['train']['images']} renders of {data['splits']['train']['count']} training shapes. "
               "IoU at 0.5" + (f" and at {chosen:g} (chosen on {report['threshold_selection']['images']} "
                                "training renders)" if tuned else "")
               + "; AP over voxels (sklearn's average_precision_score), per render, mean per class.")
    lines = [heading, markdown_table(header, rows)]
    beaten = [name for name, entry in ours["per_class"].items()
              if entry["ap"] is not None and retrieval["per_class"][name]["ap"] is not None
              and entry["ap"] <= retrieval["per_class"][name]["ap"]]
    lines.append("Ours beats retrieval (AP) in every class." if not beaten else
                 f"Retrieval's AP is at least ours in: {', '.join(beaten)}.")
    lines.append(f"Wall time: {report['timings']['total_seconds']:.0f} s. Report: {report['files']['report']}"
                 + (f"; figure: {report['files']['figure']}" if "figure" in report["files"] else ""))
    return "\n".join(lines)


def write_report(report: dict, out_dir: str | os.PathLike) -> Path:
    """Writes report.json (atomically) into `out_dir`; returns its path."""
    return atomic_files.write_json(Path(out_dir) / REPORT_FILE, report, default=_json_default)


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_figure(figure: dict, path: str | os.PathLike, tile_size: int = TILE_SIZE) -> Path:
    """One row per test render: the image, our reconstruction, the retrieved shape, the truth.

    Voxels are rendered from the render's own viewpoint (when known); ours at the
    figure's threshold (the one chosen on training renders, else 0.5), the {0, 1}
    retrieved and true shapes at 0.5.

    Args:
        figure: `evaluate_pairs`'s "figure" entry: images uint8 [K, S, S, 3], ours
            [K, R, R, R] probabilities, retrieval and truth [K, R', R', R'], viewpoints
            [K, 2] (elevation, azimuth; NaN when unknown), threshold, class_names,
            ours_iou, retrieval_iou.
        path: The PNG to write.
        tile_size: Pixels per side of each tile.

    Returns:
        The path written.
    """
    from PIL import Image, ImageDraw, ImageFont

    from tf3dgan.data import render

    count = len(figure["rows"])
    header, label_width, separator = 16, 150, 2
    stride = tile_size + separator
    width = label_width + len(FIGURE_COLUMNS) * stride
    canvas = np.empty((header + count * stride, width, 3), np.uint8)
    canvas[:] = render.BACKGROUND_COLOR.astype(np.uint8)
    viewpoints = figure.get("viewpoints")
    threshold = float(figure.get("threshold", 0.5))
    for index in range(count):
        elevation, azimuth = 30.0, 45.0
        if viewpoints is not None and np.all(np.isfinite(viewpoints[index])):
            elevation, azimuth = (float(value) for value in viewpoints[index])
        image = Image.fromarray(np.asarray(figure["images"][index], np.uint8)).resize(
            (tile_size, tile_size), Image.NEAREST)
        tiles = [np.asarray(image)] + [
            render.render_voxels(np.asarray(figure[key][index], np.float32), image_size=tile_size,
                                 threshold=threshold if key == "ours" else 0.5, elevation=elevation,
                                 azimuth=azimuth)
            for key in FIGURE_COLUMNS[1:]]
        top = header + index * stride
        for column, tile in enumerate(tiles):
            left = label_width + column * stride
            canvas[top:top + tile_size, left:left + tile_size] = tile
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    for column, name in enumerate(FIGURE_COLUMNS):
        name = f"ours (> {threshold:g})" if name == "ours" else name
        draw.text((label_width + column * stride + 4, 2), name, fill=render.LABEL_COLOR, font=font)
    for index in range(count):
        top = header + index * stride
        draw.text((4, top + 4), figure["class_names"][index], fill=render.LABEL_COLOR, font=font)
        draw.text((4, top + 20), f"ours IoU@0.5 {figure['ours_iou'][index]:.2f}", fill=render.LABEL_COLOR,
                  font=font)
        draw.text((4, top + 34), f"retrieval IoU {figure['retrieval_iou'][index]:.2f}",
                  fill=render.LABEL_COLOR, font=font)
    render.save_png(np.asarray(picture, np.uint8), path)
    return Path(path)

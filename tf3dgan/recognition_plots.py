"""PNG figures of the recognition benchmark, drawn with Pillow (no plotting library needed).

    draw_confusion_matrix   rows: true class, columns: predicted class; each cell shaded
                            by the fraction of its row, with the count written in it.
    draw_curve              test accuracy against training samples per class, one line
                            per feature set, with +-1 standard deviation bars over draws.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189))
FONT_SIZE = 14


def _font(size: int = FONT_SIZE):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # a Pillow without scalable default fonts
        return ImageFont.load_default()


def _text_size(draw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _vertical_text(text: str, font):
    from PIL import Image, ImageDraw

    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width, height = _text_size(probe, text, font)
    label = Image.new("RGBA", (width + 4, height + 6), (255, 255, 255, 0))
    ImageDraw.Draw(label).text((2, 0), text, fill=(0, 0, 0, 255), font=font)
    return label.rotate(90, expand=True)


def draw_confusion_matrix(confusion, class_names, title: str, path: str | os.PathLike) -> Path:
    """Writes the confusion matrix as a PNG.

    Args:
        confusion: int [K, K], rows true classes, columns predicted.
        class_names: K names.
        title: The figure's title.
        path: The PNG to write (its directory is created).

    Returns:
        The path written.

    Raises:
        ValueError: if the matrix is not K x K for K names.
    """
    from PIL import Image, ImageDraw

    confusion = np.asarray(confusion, np.int64)
    count = len(class_names)
    if confusion.shape != (count, count):
        raise ValueError(f"The confusion matrix has shape {confusion.shape}, expected ({count}, {count}) "
                         "for the class names given.")
    font, small = _font(), _font(FONT_SIZE - 2)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    name_width = max(_text_size(probe, name, font)[0] for name in class_names) + 12
    cell = 44
    top = 40 + name_width
    left = name_width + 30
    width, height = left + cell * count + 20, top + cell * count + 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), title, fill="black", font=font)
    rows = np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fractions = confusion / rows
    for i in range(count):
        for j in range(count):
            shade = fractions[i, j]
            color = tuple(int(255 - shade * (255 - c)) for c in (8, 48, 107))
            x, y = left + j * cell, top + i * cell
            draw.rectangle([x, y, x + cell, y + cell], fill=color, outline=(200, 200, 200))
            text = str(confusion[i, j])
            text_width, text_height = _text_size(draw, text, small)
            draw.text((x + (cell - text_width) / 2, y + (cell - text_height) / 2 - 2), text,
                      fill="white" if shade > 0.5 else "black", font=small)
    for i, name in enumerate(class_names):
        text_width, text_height = _text_size(draw, name, font)
        draw.text((left - text_width - 8, top + i * cell + (cell - text_height) / 2 - 2), name,
                  fill="black", font=font)
        label = _vertical_text(name, font)
        image.paste(label, (left + i * cell + (cell - label.width) // 2, top - label.height - 6), label)
    draw.text((left, height - 28), "columns: predicted class; rows: true class", fill=(90, 90, 90), font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def draw_curve(size_labels, series: dict, title: str, path: str | os.PathLike, *,
               x_caption: str = "training samples per class", y_caption: str = "test accuracy",
               tick: float = 0.1) -> Path:
    """Writes accuracies as lines over evenly spaced x positions (PNG): by default
    the limited-data curve; the checkpoint selection passes its own captions.

    Args:
        size_labels: The x positions' labels, e.g. ["10", "25", "50", "100", "all"]
            (drawn evenly spaced).
        series: {name: (means, stds)}, each a list with one value per size (a value of
            None leaves a gap).
        title: The figure's title.
        path: The PNG to write.
        x_caption, y_caption: The axes' captions.
        tick: The spacing of the accuracy axis' grid lines; its ends are rounded to it.

    Returns:
        The path written.
    """
    from PIL import Image, ImageDraw

    font, small = _font(), _font(FONT_SIZE - 2)
    width, height = 760, 480
    left, right, top, bottom = 70, 190, 40, 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), title, fill="black", font=font)
    values = [m - (s or 0) for means, stds in series.values() for m, s in zip(means, stds) if m is not None]
    values += [m + (s or 0) for means, stds in series.values() for m, s in zip(means, stds) if m is not None]
    margin = tick / 5
    low = max(0.0, np.floor((min(values, default=0.0) - margin) / tick) * tick)
    high = min(1.0, np.ceil((max(values, default=1.0) + margin) / tick) * tick)
    if high <= low:
        low, high = max(0.0, high - tick), min(1.0, low + tick)
    plot_width, plot_height = width - left - right, height - top - bottom

    def to_x(index: int) -> float:
        return left + plot_width * (index + 0.5) / len(size_labels)

    def to_y(value: float) -> float:
        return top + plot_height * (high - value) / (high - low)

    draw.rectangle([left, top, left + plot_width, top + plot_height], outline="black")
    decimals = max(0, -int(np.floor(np.log10(100 * tick) + 1e-9)))
    for value in np.linspace(low, high, round((high - low) / tick) + 1):
        y = to_y(value)
        draw.line([left, y, left + plot_width, y], fill=(225, 225, 225))
        text = f"{100 * value:.{decimals}f}%"
        draw.text((left - _text_size(draw, text, small)[0] - 6, y - 7), text, fill="black", font=small)
    for index, text in enumerate(size_labels):
        draw.text((to_x(index) - _text_size(draw, text, small)[0] / 2, top + plot_height + 6), text,
                  fill="black", font=small)
    draw.text((left + (plot_width - _text_size(draw, x_caption, font)[0]) / 2, height - 30), x_caption,
              fill="black", font=font)
    label = _vertical_text(y_caption, font)
    image.paste(label, (6, top + (plot_height - label.height) // 2), label)
    for number, (name, (means, stds)) in enumerate(series.items()):
        color = COLORS[number % len(COLORS)]
        points = [(to_x(i), to_y(m)) for i, m in enumerate(means) if m is not None]
        if len(points) > 1:
            draw.line(points, fill=color, width=3)
        for i, (mean, std) in enumerate(zip(means, stds)):
            if mean is None:
                continue
            x, y = to_x(i), to_y(mean)
            if std:
                draw.line([x, to_y(mean + std), x, to_y(mean - std)], fill=color, width=2)
                for end in (mean + std, mean - std):
                    draw.line([x - 5, to_y(end), x + 5, to_y(end)], fill=color, width=2)
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=color)
        legend_y = top + 10 + 24 * number
        draw.line([left + plot_width + 14, legend_y + 8, left + plot_width + 40, legend_y + 8],
                  fill=color, width=3)
        draw.text((left + plot_width + 46, legend_y), name, fill="black", font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path

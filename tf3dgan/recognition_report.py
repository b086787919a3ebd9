"""The recognition benchmark's report: its JSON file, its figures and its text tables.

The tables are Markdown (pipes), so they paste into a README as they are. The
summary table comes last on stdout; the JSON report holds everything in them
and more (see `REPORT_FIELDS` and `tf3dgan.recognition_benchmark`).
"""

from __future__ import annotations

import os
from pathlib import Path

from tf3dgan import atomic_files, recognition_plots

REPORT_FILE = "report.json"
CURVE_FILE = "curve.png"
SELECTION_FILE = "checkpoint_selection.png"
REPORT_FIELDS = ("task", "created_at", "command", "model", "data", "settings", "methods",
                 "timings", "files", "environment")
METHOD_FIELDS = ("name", "source", "num_features", "c", "cv_accuracy", "cv_fold_accuracies",
                 "cv_folds", "accuracy", "mean_per_class_accuracy", "per_class_accuracy",
                 "per_class_count", "class_names", "confusion", "not_converged", "curve", "timings")
PAPER_MODELNET10_ACCURACY = 0.910


def confusion_file(method_key: str) -> str:
    """The PNG file name of a method's confusion matrix."""
    return f"confusion_{method_key}.png"


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def markdown_table(header, rows) -> str:
    """A Markdown table; numbers right-aligned by padding every column to its width."""
    cells = [[str(cell) for cell in header]] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |"
             for row in cells]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def summary_table(report: dict) -> str:
    """The main table: one row per feature set (model first, then the baselines)."""
    rows = []
    for method in report["methods"].values():
        cv = method["cv_accuracy"].get(_c_key(method["c"]))
        rows.append([method["name"], f"{method['num_features']:,}", f"{method['c']:g}", _percent(cv),
                     _percent(method["accuracy"]), _percent(method["mean_per_class_accuracy"]),
                     f"{method['timings']['extract_seconds']:.1f}",
                     f"{method['timings']['classifier_seconds']:.1f}"])
    table = markdown_table(["features", "size", "C (CV)", "CV acc.", "test acc.", "mean/class",
                            "extract s", "SVM s"], rows)
    data = report["data"]
    train_count, test_count = data["splits"]["train"]["count"], data["splits"]["test"]["count"]
    svm = report["settings"]["svm"]
    heading = (f"Recognition on {data['name']} {data.get('path') or ''}: train {train_count}, "
               f"test {test_count} shapes, {len(data['class_names'])} classes; linear SVM "
               f"({svm['solver']}, {svm['multiclass']}), C from {svm['cv_folds']}-fold CV on the training split.")
    lines = [heading, table]
    if "modelnet10" in (data["name"] + str(data.get("path") or "")).lower():
        lines.append(f"Paper (Wu et al. 2016, 3D-GAN features, 64^3, ModelNet10): "
                     f"{_percent(PAPER_MODELNET10_ACCURACY)}.")
    lines.append(f"Wall time: {report['timings']['total_seconds']:.0f} s. Report: "
                 f"{report['files']['report']}")
    return "\n".join(lines)


def per_class_table(report: dict) -> str:
    """Test accuracy per class, one column per feature set."""
    methods = list(report["methods"].values())
    first = methods[0]
    rows = []
    for index, name in enumerate(first["class_names"]):
        rows.append([name, first["per_class_count"][index]]
                    + [_percent(method["per_class_accuracy"][name]) for method in methods])
    return markdown_table(["class", "test n"] + [method["name"] for method in methods], rows)


def confusion_table(method: dict) -> str:
    """A method's confusion matrix: rows true, columns predicted (names cut to 8 letters)."""
    names = method["class_names"]
    rows = [[name] + row for name, row in zip(names, method["confusion"])]
    return markdown_table(["true \\ predicted"] + [name[:8] for name in names], rows)


def curve_table(report: dict) -> str:
    """Mean test accuracy (+- std over draws) per training samples per class."""
    methods = list(report["methods"].values())
    labels = [str(point["per_class"]) for point in methods[0]["curve"]] + ["all"]
    rows = []
    for method in methods:
        cells = [f"{_percent(point['mean'])} +- {100 * point['std']:.1f}" for point in method["curve"]]
        rows.append([method["name"]] + cells + [_percent(method["accuracy"])])
    draws = report["settings"]["curve_draws"]
    return (markdown_table(["features \\ per class"] + labels, rows)
            + f"\n(mean +- std over {draws} draws; a class with fewer samples is used whole; "
              "'all' is the full training split)")


def selection_table(selection: dict) -> str:
    """The checkpoint selection's candidates (`tf3dgan.checkpoint_selection`), the chosen one marked."""
    held_out = selection.get("criterion") == "holdout_accuracy"
    rows = []
    for candidate in selection["candidates"]:
        row = [candidate["step"], f"{candidate['c']:g}", f"{100 * candidate['cv_accuracy']:.2f}%"]
        if held_out:
            row += [f"{100 * candidate['holdout_accuracy']:.2f}%",
                    f"{100 * candidate['holdout_mean_per_class_accuracy']:.2f}%"]
        rows.append(row + ["<- chosen" if candidate["step"] == selection["chosen"]["step"] else ""])
    headers = ["step", "C (CV)", "CV acc. (seen shapes)" if held_out else "CV acc."]
    return markdown_table(headers + (["held-out acc.", "held-out mean/class"] if held_out else []) + [""],
                          rows)


def selection_caption(selection: dict) -> str:
    """What the selection scored checkpoints by, in words."""
    if selection.get("criterion") == "holdout_accuracy":
        counts = selection["holdout"]
        return (f"accuracy on the {counts['held_out']} training shapes held away from the GAN, "
                f"SVM fitted on the {counts['seen']} it saw")
    return "CV accuracy on the training split"


def draw_selection(selection: dict, path: str | os.PathLike) -> Path:
    """Plots the checkpoint selection's scores against the step (PNG)."""
    candidates = selection["candidates"]
    criterion = selection.get("criterion", "cv_accuracy")
    labels = [f"{candidate['step'] / 1000:g}k" if candidate["step"] >= 1000 else str(candidate["step"])
              for candidate in candidates]
    chosen = selection["chosen"]["step"]
    zeros = [0.0] * len(candidates)
    series = {}
    if criterion == "holdout_accuracy":
        series["held-out accuracy"] = ([candidate[criterion] for candidate in candidates], zeros)
        series["CV accuracy (seen)"] = ([candidate["cv_accuracy"] for candidate in candidates], zeros)
    else:
        series["CV accuracy"] = ([candidate["cv_accuracy"] for candidate in candidates], zeros)
    series["chosen"] = ([candidate[criterion] if candidate["step"] == chosen else None
                         for candidate in candidates], zeros)
    return recognition_plots.draw_curve(
        labels, series, f"Checkpoint selection: step {chosen} chosen", path,
        x_caption="training step", y_caption="accuracy (training split)", tick=0.01)


def write_figures(report: dict, out_dir: str | os.PathLike) -> dict:
    """Writes a confusion-matrix PNG per method, the curve PNG and, when the report has
    one, the checkpoint selection's PNG; returns their paths."""
    out_dir = Path(out_dir)
    files = {}
    for key, method in report["methods"].items():
        files[f"confusion_{key}"] = str(recognition_plots.draw_confusion_matrix(
            method["confusion"], method["class_names"],
            f"{method['name']}: test accuracy {_percent(method['accuracy'])}",
            out_dir / confusion_file(key)))
    methods = list(report["methods"].values())
    labels = [str(point["per_class"]) for point in methods[0]["curve"]] + ["all"]
    series = {method["name"]: ([point["mean"] for point in method["curve"]] + [method["accuracy"]],
                               [point["std"] for point in method["curve"]] + [0.0])
              for method in methods}
    files["curve"] = str(recognition_plots.draw_curve(
        labels, series, f"Limited training data: {_data_title(report['data'])}", out_dir / CURVE_FILE))
    if "checkpoint_selection" in report:
        files["checkpoint_selection"] = str(draw_selection(report["checkpoint_selection"],
                                                           out_dir / SELECTION_FILE))
    return files


def _data_title(data: dict) -> str:
    path = data.get("path")
    return f"{data['name']} ({os.path.basename(path)})" if path else data["name"]


def _c_key(c: float) -> str:
    return f"{c:g}"


def jsonable_method(name: str, source: dict, result: dict, class_names, curve, timings) -> dict:
    """A method's entry in the report, from `recognition.evaluate_features`'s result.

    Per-class values are keyed by class name; the CV scores by C written with "%g".
    """
    return {
        "name": name,
        "source": source,
        "num_features": result["num_features"],
        "c": result["c"],
        "cv_accuracy": {_c_key(c): value for c, value in result["cv_accuracy"].items()},
        "cv_fold_accuracies": {_c_key(c): value for c, value in result["cv_fold_accuracies"].items()},
        "cv_folds": result["cv_folds"],
        "accuracy": result["accuracy"],
        "mean_per_class_accuracy": result["mean_per_class_accuracy"],
        "per_class_accuracy": dict(zip(class_names, result["per_class_accuracy"])),
        "per_class_count": result["per_class_count"],
        "class_names": list(class_names),
        "confusion": result["confusion"],
        "not_converged": result["not_converged"],
        "curve": curve,
        "timings": timings,
    }


def write_report(report: dict, out_dir: str | os.PathLike) -> Path:
    """Writes report.json (atomically) into `out_dir`; returns its path."""
    return atomic_files.write_json(Path(out_dir) / REPORT_FILE, report)


def tables(report: dict) -> str:
    """Everything printed on stdout, the summary table last."""
    model = next(iter(report["methods"].values()))
    blocks = [
        f"Confusion matrix, {model['name']} (rows: true class):\n" + confusion_table(model),
        "Test accuracy per class:\n" + per_class_table(report),
        "Limited training data (test accuracy):\n" + curve_table(report),
    ]
    if "checkpoint_selection" in report:
        selection = report["checkpoint_selection"]
        blocks.append(f"Checkpoint selection ({selection_caption(selection)}):\n"
                      + selection_table(selection))
    return "\n\n".join(blocks + [summary_table(report)])

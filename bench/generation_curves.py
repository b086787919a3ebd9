"""The generation metrics a run logged while it trained, for several runs side by side.

Reads the `generation/*` scalars that `--metrics_every_steps` writes to each workdir's
TensorBoard logs (tf3dgan.generation_callbacks), prints one table per metric (a row per
step, a column per run; the last table is the stray-voxel share), each run's step of
lowest MMD (IoU) (on held-out shapes when the run kept some: a checkpoint choice that never
sees the test split), and with --plot every metric against the step, one line per run.

    python bench/generation_curves.py runs/chairs_old runs/chairs_new --plot docs/images/curves.png

Run it from the project's root (it imports tf3dgan).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

METRICS = (("mmd_iou", "MMD (IoU distance), lower is better"),
           ("cov_iou", "COV (IoU), higher is better"),
           ("1nna_iou", "1-NNA (IoU), 50% is ideal"),
           ("jsd", "JSD (occupancy), lower is better"),
           ("stray_voxels", "stray voxels (share outside the largest piece)"))


def read_curves(workdir: Path) -> dict[str, dict[int, float]]:
    """{metric: {step: value}} of the run's generation/* scalars (the last write of a step wins)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves: dict[str, dict[int, float]] = {}
    for events in sorted((workdir / "logs").glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"tensors": 0, "scalars": 0})
        accumulator.Reload()
        tags = accumulator.Tags()
        for tag in tags.get("tensors", []):
            if tag.startswith("generation/"):
                import tensorflow as tf

                for event in accumulator.Tensors(tag):
                    curves.setdefault(tag.split("/", 1)[1], {})[event.step] = float(
                        tf.make_ndarray(event.tensor_proto))
        for tag in tags.get("scalars", []):
            if tag.startswith("generation/"):
                for event in accumulator.Scalars(tag):
                    curves.setdefault(tag.split("/", 1)[1], {})[event.step] = float(event.value)
    return curves


# Plotted: the shares (the plot's axis is in percent).
PLOTTED = (("cov_iou", "COV (IoU), higher is better"),
           ("1nna_iou", "1-NNA (IoU), 50% is ideal"),
           ("stray_voxels", "stray voxels (the reference shapes: their own share)"))


def plot_curves(runs: dict, path: Path) -> Path:
    """One panel per PLOTTED metric, one line per run (plus the reference shapes' own
    stray-voxel share as a run of its own), side by side in one PNG."""
    import tempfile

    from PIL import Image

    from tf3dgan.recognition_plots import draw_curve

    steps = sorted({step for curves in runs.values() for points in curves.values() for step in points})
    panels = []
    with tempfile.TemporaryDirectory() as folder:
        for metric, title in PLOTTED:
            series = {name: ([curves.get(metric, {}).get(step) for step in steps], [None] * len(steps))
                      for name, curves in runs.items()}
            references = [c["reference_stray_voxels"] for c in runs.values() if c.get("reference_stray_voxels")]
            if metric == "stray_voxels" and references:
                value = next(iter(references[0].values()))
                series["reference shapes"] = ([value] * len(steps), [None] * len(steps))
            panel = draw_curve([str(step) for step in steps], series, title, Path(folder) / f"{metric}.png",
                               x_caption="training step", y_caption=metric, tick=0.05)
            panels.append(Image.open(panel).convert("RGB"))
        figure = Image.new("RGB", (sum(p.width for p in panels), max(p.height for p in panels)), "white")
        x = 0
        for panel in panels:
            figure.paste(panel, (x, 0))
            x += panel.width
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.save(path)
    return path


def best_step(curves: dict[str, dict[int, float]]) -> tuple[int, float] | None:
    """(step, value) of the lowest logged MMD (IoU); the later step wins a tie.

    With --holdout_fraction the curves are measured on held-out training shapes, so this
    chooses a checkpoint without looking at the test split.
    """
    points = curves.get("mmd_iou", {})
    if not points:
        return None
    step = min(points, key=lambda s: (points[s], -s))
    return step, points[step]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdirs", nargs="+", type=Path)
    parser.add_argument("--names", default="", help="comma-separated run names (default: folder names)")
    parser.add_argument("--plot", type=Path, default=None, help="write the curves to this PNG")
    args = parser.parse_args(argv)
    names = [n for n in args.names.split(",") if n] or [w.name for w in args.workdirs]
    if len(names) != len(args.workdirs):
        parser.error(f"--names gives {len(names)} names for {len(args.workdirs)} workdirs")
    missing = [str(w) for w in args.workdirs if not (w / "logs").is_dir()]
    if missing:
        parser.error(f"no logs/ folder in {', '.join(missing)}: pass training workdirs")
    runs = {name: read_curves(workdir) for name, workdir in zip(names, args.workdirs)}
    if args.plot:
        print(f"Wrote {plot_curves(runs, args.plot)}")
    for name, curves in runs.items():
        best = best_step(curves)
        if best is not None:
            print(f"{name}: lowest MMD (IoU) at step {best[0]} ({best[1]:.4f})")
    for metric, title in METRICS:
        steps = sorted({step for curves in runs.values() for step in curves.get(metric, {})})
        print(f"\n{title}")
        print("step    " + "  ".join(f"{name:>14}" for name in runs))
        for step in steps:
            cells = [runs[name].get(metric, {}).get(step) for name in runs]
            print(f"{step:<8}" + "  ".join(f"{c:>14.4f}" if c is not None else f"{'-':>14}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())

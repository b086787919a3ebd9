"""Forward + backward time of each strided layer of the 3D-GAN in every formulation.

The table behind `tf3dgan.models.strided_convolutions.choose_formulation`: for
the paper's widths at 32^3 (and the smaller seed layers of 64^3), each layer's
convolution with input and kernel gradients, timed as "native" (TensorFlow's
oneDNN Conv3D / Conv3DTranspose), "space_to_depth" and "matmul", in the same
process, alternating, so the speedup column is a same-run ratio.

    .venv/bin/python bench/strided_convolutions.py [--batch 16] [--width 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from tf3dgan.models import strided_convolutions as sc  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def layer_shapes(width: int):
    """(name, kind, narrow edge, voxel-side channels, narrow-side channels) at 32^3."""
    return [
        ("D conv1", "conv", 16, 1, width),
        ("D conv2", "conv", 8, width, 2 * width),
        ("D conv3", "conv", 4, 2 * width, 4 * width),
        ("D conv4", "conv", 2, 4 * width, 8 * width),
        ("G deconv2", "transpose", 2, 4 * width, 8 * width),
        ("G deconv3", "transpose", 4, 2 * width, 4 * width),
        ("G deconv4", "transpose", 8, width, 2 * width),
        ("G deconv5", "transpose", 16, 1, width),
    ]


def time_formulation(kind, narrow, wide_channels, narrow_channels, batch, formulation, repeats):
    edge = 2 * narrow
    if kind == "conv":
        inputs = tf.random.uniform([batch, edge, edge, edge, wide_channels])
        kernel = tf.Variable(tf.random.normal([4, 4, 4, wide_channels, narrow_channels], stddev=0.05))
        run = lambda x: sc.conv3d(x, kernel, formulation)  # noqa: E731
    else:
        inputs = tf.random.uniform([batch, narrow, narrow, narrow, narrow_channels])
        kernel = tf.Variable(tf.random.normal([4, 4, 4, wide_channels, narrow_channels], stddev=0.05))
        run = lambda x: sc.conv3d_transpose(x, kernel, formulation)  # noqa: E731

    @tf.function(jit_compile=False)
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(run(x))
        # The loss is fetched too: the gradient of a sum does not need the
        # forward output, so with the gradients alone TF prunes the forward pass.
        return [loss] + tape.gradient(loss, [x, kernel])

    def once():
        for tensor in forward_backward(inputs):
            tensor.numpy()

    once(), once()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=int, default=64, help="base_filters (64: paper)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rows = []
    for name, kind, narrow, wide, narrow_channels in layer_shapes(args.width):
        gflop = 3 * 2 * args.batch * narrow ** 3 * 64 * wide * narrow_channels / 1e9
        row = {"layer": name, "kind": kind, "narrow_edge": narrow, "wide_channels": wide,
               "narrow_channels": narrow_channels, "gflop": gflop,
               "chosen": sc.choose_formulation(narrow, wide)}
        for formulation in sc.FORMULATIONS:
            if formulation == "matmul" and narrow > 4:
                continue  # the gathered windows would not fit a sane memory budget
            seconds = time_formulation(kind, narrow, wide, narrow_channels, args.batch,
                                       formulation, args.repeats)
            row[formulation] = seconds
            print(f"{name:10s} {formulation:15s} {seconds * 1e3:8.1f} ms {gflop / seconds:7.1f} GFLOP/s",
                  flush=True)
        rows.append(row)

    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "strided_convolutions.json").write_text(json.dumps(
        {"batch": args.batch, "width": args.width, "rows": rows}, indent=2))
    print(f"\nbatch {args.batch}, width {args.width}: milliseconds per forward + backward "
          "(speedup over native)")
    print(f"{'layer':10s} {'grid':>12s} {'channels':>10s} {'native':>8s} {'space_to_depth':>16s} "
          f"{'matmul':>16s}  chosen")
    for row in rows:
        cells = []
        for formulation in ("space_to_depth", "matmul"):
            if formulation in row:
                cells.append(f"{row[formulation] * 1e3:7.1f} ({row['native'] / row[formulation]:4.2f}x)")
            else:
                cells.append(f"{'-':>16s}")
        grid = f"{2 * row['narrow_edge']}^3<>{row['narrow_edge']}^3"
        channels = f"{row['wide_channels']}<>{row['narrow_channels']}"
        print(f"{row['layer']:10s} {grid:>12s} {channels:>10s} {row['native'] * 1e3:8.1f} "
              f"{cells[0]:>16s} {cells[1]:>16s}  {row['chosen']}")


if __name__ == "__main__":
    main()

"""Train-step throughput of GAN3D on this machine's CPU, in one run.

Sections (`--only NAME` runs one; measurements are shared, so each runs once):
  throughput  samples/s of the paper's widths at 32^3 (batch 16), the PAPER64
              network at 64^3 (batch 8) and the CPU32 preset as configured.
  flops       achieved GFLOP/s of the float32 32^3 train step (FLOPs counted
              analytically, see `step_gflop`) against one large Conv3D
              (forward + backward); the team's target is a ratio >= 0.8.
  mixed       mixed_bfloat16 against float32 at 32^3 (+ the Conv3D in bf16).
  mirrored    MirroredStrategy over two logical CPUs against one device at 32^3,
              same global batch.
  adam        one optimizer update of G's and D's weights at the paper's widths:
              keras.optimizers.Adam against the project's FusedAdam.

Prints one line per measurement as it finishes, then a table; writes JSON to
bench/results/train_throughput.json (train_throughput.quick.json for --quick).

    .venv/bin/python bench/train_throughput.py            # full run (minutes)
    .venv/bin/python bench/train_throughput.py --quick    # 16^3, width 4: seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf3dgan import distribute  # noqa: E402

# The whole process runs with the CPU split into two logical devices (it must
# happen before TF initializes), so the mirrored and single-device steps are
# measured in the same warm process on the same data pipeline (one subprocess
# per measurement would add a TF start-up each). This is fair because logical
# CPU devices share one process-wide intra-op Eigen pool of NumSchedulableCPUs
# threads (LocalDevice::use_global_threadpool_ defaults to true in TF's
# local_device.cc), which TF's oneDNN kernels also run on: an op on /cpu:0
# still uses both cores (the split process has the same threads as an unsplit
# one: no second pool). The "cores" column (process CPU time / wall time)
# shows it per measurement; it reads ~2 only on an otherwise idle machine.
distribute.split_cpu(2)

import keras  # noqa: E402

from tf3dgan.config import CPU32, PAPER64  # noqa: E402
from tf3dgan.data import pipeline  # noqa: E402
from tf3dgan.models import layout  # noqa: E402
from tf3dgan.models.fused_adam import FusedAdam  # noqa: E402
from tf3dgan.models.gan import build_gan, build_networks  # noqa: E402

SECTIONS = ("throughput", "flops", "mixed", "mirrored", "adam")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def conv_layers(resolution: int, base_filters: int, latent_dim: int):
    """Per-sample (forward MACs) of G's and D's convolutions, input to output.

    Conv3D: output_voxels * k^3 * C_in * C_out. Conv3DTranspose: counted as the
    equivalent convolution, input_voxels * k^3 * C_in * C_out. Border taps that
    fall on 'same' padding are counted too (dense kernels compute them).
    """
    seed, k3 = layout.seed_size(resolution), layout.KERNEL_SIZE ** 3
    g_widths = layout.generator_widths(base_filters)
    generator = [seed ** 3 * latent_dim * g_widths[0]]  # 1^3 -> seed^3, kernel = seed
    edge = seed
    for c_in, c_out in zip(g_widths, g_widths[1:] + [1]):
        generator.append(edge ** 3 * k3 * c_in * c_out)
        edge *= 2
    d_widths = layout.discriminator_widths(base_filters)
    discriminator, edge = [], resolution
    for c_in, c_out in zip([1] + d_widths[:-1], d_widths):
        edge //= 2
        discriminator.append(edge ** 3 * k3 * c_in * c_out)
    discriminator.append(seed ** 3 * d_widths[-1])  # seed^3 -> 1^3 logit
    return generator, discriminator


def step_gflop(config) -> tuple[float, float]:
    """GFLOP (2 * MACs, convolutions only) of one GAN3D.train_step on the global batch.

    Backward of a conv = input grad + weight grad, each as many FLOPs as the
    forward. BatchNorm, activations, losses and Adam are not counted (few FLOPs,
    memory bound). Per sample, with G, D the forward FLOPs and G1, D1 those of
    the first layer (whose input grad is never needed: voxels and z are not
    variables):
      D step = G (no grad, stop_gradient) + 2 D (real, fake)
               + 2 (D weight grads + D input grads - D1)              = G + 6D - 2 D1
      G step = G + D + D input grads (all layers, down to the fake)
               + G weight grads + G input grads - G1                  = 3G + 2D - G1
    Assumption: in the G step the tape builds D's weight grads too (TF's conv
    gradient functions emit both), but nothing consumes them, so they are pruned
    from the tf.function graph. Returns (counted, upper bound if they are not).
    """
    generator, discriminator = conv_layers(
        config.model.resolution, config.model.base_filters, config.model.latent_dim)
    g, d = 2 * sum(generator), 2 * sum(discriminator)
    g1, d1 = 2 * generator[0], 2 * discriminator[0]
    per_sample = (g + 6 * d - 2 * d1) + (3 * g + 2 * d - g1)
    batch = config.train.batch_size
    return batch * per_sample / 1e9, batch * (per_sample + d) / 1e9


def timed(run_once, steps: int, warmup: int) -> dict:
    """Steady-state timing of `run_once` (which must block until done).

    Warm-up calls trace and optimize the graph and let tf.data fill its
    prefetch buffer. Each timed step is synced, and the median is reported:
    it resists the other jobs sharing these two cores.
    """
    for _ in range(warmup):
        run_once()
    times, cpu0, wall0 = [], time.process_time(), time.perf_counter()
    for _ in range(steps):
        start = time.perf_counter()
        run_once()
        times.append(time.perf_counter() - start)
    cores = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    return {"median_s": statistics.median(times), "mean_s": statistics.mean(times),
            "min_s": min(times), "cores": cores}


def measure_train_step(config, precision: str, strategy, steps: int, warmup: int) -> dict:
    """Times GAN3D.train_step as `fit()` runs it: Keras's compiled train_function
    on a distributed iterator over `training_dataset`. Calling it directly (not
    `fit`) leaves out only per-step callback / progress-bar Python and the
    per-epoch iterator set-up, which are not part of the step."""
    keras.config.set_dtype_policy(precision)  # models must be built after this
    try:
        keras.utils.set_random_seed(0)
        with strategy.scope():
            gan = build_gan(config.model, config.train)
        assert not gan.jit_compile, "XLA on CPU is ~50x slower; it must stay off"
        batch = config.train.batch_size
        resolution = config.model.resolution
        voxels = (np.random.default_rng(0).random((2 * batch,) + (resolution,) * 3) < 0.5)
        dataset = pipeline.training_dataset(voxels.astype(np.uint8), batch, seed=0)
        iterator = iter(strategy.experimental_distribute_dataset(dataset))
        gan.make_train_function()  # Keras returns None on first creation; use the attribute
        train_function = gan.train_function
        # float() copies a result to the host, so each call is complete when timed.
        result = timed(lambda: float(train_function(iterator)["d_loss"]), steps, warmup)
    finally:
        keras.config.set_dtype_policy("float32")
        gan = iterator = None
        keras.backend.clear_session()
        gc.collect()
    gflop, gflop_upper = step_gflop(config)
    result.update(
        resolution=resolution, base_filters=config.model.base_filters, batch=batch,
        precision=precision, replicas=strategy.num_replicas_in_sync,
        samples_per_s=batch / result["median_s"], gflop=gflop,
        gflops=gflop / result["median_s"], gflop_if_d_wgrad_kept=gflop_upper)
    return result


def measure_conv3d(shape, filters: int, dtype, steps: int, warmup: int) -> dict:
    """Forward + backward (input and weight grads) of one Conv3D, kernel 4,
    stride 2, 'same', channels_last, in a tf.function without XLA.

    The loss is returned with the gradients on purpose: the gradient of a sum
    does not need the convolution's output, so if only the gradients are
    fetched TensorFlow prunes the forward Conv3D and the op runs 2/3 of the
    FLOPs counted here (an earlier version of this benchmark did: it read ~306
    GFLOP/s instead of ~220, and the step's ratio came out 1.5 times too low).
    """
    with tf.device("/cpu:0"):
        inputs = tf.random.uniform(shape, dtype=dtype)
        kernel = tf.Variable(tf.random.normal([4, 4, 4, shape[-1], filters], stddev=0.05, dtype=dtype))

    @tf.function(jit_compile=False)
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.nn.conv3d(x, kernel, [1, 2, 2, 2, 1], "SAME"))
        return [loss] + tape.gradient(loss, [x, kernel])

    result = timed(lambda: [tf.reshape(t, [-1])[0].numpy() for t in forward_backward(inputs)],
                   steps, warmup)
    out_voxels = shape[0] * np.prod([(edge + 1) // 2 for edge in shape[1:4]])
    gflop = 3 * 2 * out_voxels * 4 ** 3 * shape[-1] * filters / 1e9
    result.update(shape=list(shape), filters=filters, precision=tf.as_dtype(dtype).name,
                  gflop=float(gflop), gflops=float(gflop / result["median_s"]))
    return result


def measure_adam(config, optimizer_class, steps: int, warmup: int) -> dict:
    """One `apply` of `optimizer_class` (Adam, beta_1 0.5) to G's and D's weights
    with fixed random gradients, in a tf.function as the train step runs it."""
    keras.utils.set_random_seed(0)
    generator, discriminator = build_networks(config.model)
    generator.build()
    discriminator.build()
    variables = generator.trainable_variables + discriminator.trainable_variables
    gradients = [tf.random.normal(v.shape, stddev=1e-3) for v in variables]
    optimizer = optimizer_class(1e-3, beta_1=0.5)
    optimizer.build(variables)

    @tf.function(jit_compile=False)
    def update():
        optimizer.apply(gradients, variables)
        return optimizer.iterations.value

    result = timed(lambda: update().numpy(), steps, warmup)
    weights = int(sum(np.prod(v.shape) for v in variables))
    result.update(optimizer=optimizer_class.__name__, weights=weights,
                  gb_per_s_min=weights * 4 * 5 / 1e9 / result["median_s"])
    keras.backend.clear_session()
    return result


def plan(quick: bool):
    """The measurements: name -> (kind, arguments), at full or --quick size."""
    paper32 = CPU32.replace(base_filters=64, batch_size=16)
    paper64 = PAPER64.replace(batch_size=8)
    cpu32 = CPU32
    conv_shape, conv_filters = (8, 32, 32, 32, 64), 128
    if quick:
        tiny = dict(resolution=16, base_filters=4)
        paper32, paper64, cpu32 = (c.replace(**tiny) for c in (paper32, paper64, cpu32))
        conv_shape, conv_filters = (2, 16, 16, 16, 8), 16
    # 1.0 keeps the discriminator gate open, so every step updates D and does
    # the same work (the gate's outcome on random voxels is arbitrary).
    gate_off = dict(d_accuracy_threshold=1.0)
    paper32, paper64, cpu32 = (c.replace(**gate_off) for c in (paper32, paper64, cpu32))
    return {
        "step_32_f32": ("step", paper32, "float32", "one_device"),
        "step_64_f32": ("step", paper64, "float32", "one_device"),
        "step_cpu32_f32": ("step", cpu32, "float32", "one_device"),
        "step_32_bf16": ("step", paper32, "mixed_bfloat16", "one_device"),
        "step_32_mirrored": ("step", paper32, "float32", "mirrored"),
        "conv3d_f32": ("conv", conv_shape, conv_filters, tf.float32),
        "conv3d_bf16": ("conv", conv_shape, conv_filters, tf.bfloat16),
        "adam_keras": ("adam", paper32, keras.optimizers.Adam),
        "adam_fused": ("adam", paper32, FusedAdam),
    }


SECTION_MEASUREMENTS = {
    "throughput": ["step_32_f32", "step_64_f32", "step_cpu32_f32"],
    "flops": ["step_32_f32", "conv3d_f32"],
    "mixed": ["step_32_f32", "step_32_bf16", "conv3d_f32", "conv3d_bf16"],
    "mirrored": ["step_32_f32", "step_32_mirrored"],
    "adam": ["adam_keras", "adam_fused"],
}


def ratios(results: dict) -> dict:
    def ratio(name, numerator, denominator, field):
        if "gflops" in results.get(numerator, {}) and "gflops" in results.get(denominator, {}):
            out[name] = results[numerator][field] / results[denominator][field]
    out = {}
    ratio("step_32_f32_vs_conv3d_gflops", "step_32_f32", "conv3d_f32", "gflops")
    ratio("bf16_vs_f32_samples_per_s", "step_32_bf16", "step_32_f32", "samples_per_s")
    ratio("conv3d_bf16_vs_f32_gflops", "conv3d_bf16", "conv3d_f32", "gflops")
    ratio("step_32_bf16_vs_conv3d_bf16_gflops", "step_32_bf16", "conv3d_bf16", "gflops")
    ratio("mirrored_vs_one_device_samples_per_s", "step_32_mirrored", "step_32_f32", "samples_per_s")
    if "median_s" in results.get("adam_keras", {}) and "median_s" in results.get("adam_fused", {}):
        out["adam_keras_vs_fused_time"] = (results["adam_keras"]["median_s"]
                                           / results["adam_fused"]["median_s"])
    return out


def describe(name: str, r: dict) -> str:
    if "error" in r:
        return f"{name:17s} FAILED {r['error']}"
    if "optimizer" in r:
        return (f"{name:17s} {r['optimizer']:38s} {r['median_s'] * 1e3:9.1f} ms   "
                f"{r['weights'] / 1e6:.1f}M weights, >= {r['gb_per_s_min']:.1f} GB/s "
                f"(5 arrays read or written)  cores {r['cores']:.2f}")
    if "samples_per_s" in r:
        size = f"{r['resolution']}^3 w{r['base_filters']} b{r['batch']} {r['precision']} x{r['replicas']}"
        rate = f"{r['samples_per_s']:8.2f} samples/s"
    else:
        size = f"{r['shape']} -> {r['filters']} {r['precision']}"
        rate = " " * 18
    return (f"{name:17s} {size:38s} {r['median_s'] * 1e3:9.1f} ms {rate} "
            f"{r['gflop']:9.2f} GFLOP {r['gflops']:8.1f} GFLOP/s  cores {r['cores']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10, quick 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 2, quick 1)")
    parser.add_argument("--only", choices=SECTIONS, help="run one section")
    args = parser.parse_args()
    steps = args.steps or (3 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)

    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategies = {"one_device": tf.distribute.OneDeviceStrategy("/cpu:0"),
                  "mirrored": distribute.make_strategy("mirrored")}  # as --strategy=mirrored does
    load = os.getloadavg()[0]
    print(f"TF {tf.__version__}, Keras {keras.__version__}, logical CPUs {cpus}, "
          f"mirrored replicas {strategies['mirrored'].num_replicas_in_sync}, "
          f"os.cpu_count {os.cpu_count()}, load average {load:.2f}", flush=True)
    if load > 0.5:
        print("Warning: other processes are using the CPU; rates below are contended.", flush=True)

    measurements = plan(args.quick)
    wanted = [args.only] if args.only else list(SECTIONS)
    names = list(dict.fromkeys(n for s in wanted for n in SECTION_MEASUREMENTS[s]))
    results = {}
    for name in names:
        kind, *spec = measurements[name]
        try:
            if kind == "step":
                config, precision, strategy_name = spec
                results[name] = measure_train_step(config, precision, strategies[strategy_name],
                                                   steps, warmup)
            elif kind == "adam":
                results[name] = measure_adam(*spec, steps, warmup)
            else:
                results[name] = measure_conv3d(*spec, steps, warmup)
        except Exception as error:  # one failure should not lose a long run's other rows
            results[name] = {"error": f"{type(error).__name__}: {error}"}
        print("done  " + describe(name, results[name]), flush=True)

    summary = ratios(results)
    report = {"quick": args.quick, "steps": steps, "warmup": warmup, "sections": wanted,
              "load_average_start": load, "load_average_end": os.getloadavg()[0],
              "tensorflow": tf.__version__, "keras": keras.__version__,
              "results": results, "ratios": summary}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out_path = RESULTS_DIR / ("train_throughput.quick.json" if args.quick else "train_throughput.json")
    out_path.write_text(json.dumps(report, indent=2, default=float) + "\n")

    print(f"\nResults ({steps} timed steps after {warmup} warm-up, median step time; "
          f"JSON: {out_path}):")
    for name, result in results.items():
        print(describe(name, result))
    for name, value in summary.items():
        target = "  (target >= 0.80)" if name == "step_32_f32_vs_conv3d_gflops" else ""
        print(f"{name:40s} {value:6.2f}{target}")


if __name__ == "__main__":
    main()

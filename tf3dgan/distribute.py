"""Creates the tf.distribute strategy named by `--strategy`."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from tf3dgan.config import STRATEGIES


def split_cpu(num_devices: int) -> None:
    """Splits the CPU into `num_devices` logical devices (must run before TF initializes).

    Used on machines without a GPU so that MirroredStrategy has several
    replicas to mirror; a no-op when `num_devices` < 2 or a GPU is present.

    Raises:
        RuntimeError: if TensorFlow has already initialized its devices.
    """
    if num_devices < 2 or tf.config.list_physical_devices("GPU"):
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as error:
        raise RuntimeError(
            f"Cannot split the CPU into {num_devices} logical devices: TensorFlow has already "
            "initialized its devices. Call split_cpu() before any other TensorFlow operation."
        ) from error


def _check_tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise ValueError(
            "--strategy=multi_worker needs the TF_CONFIG environment variable, e.g. "
            'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\' on the first worker.'
        )
    try:
        tf_config = json.loads(raw)
        workers = tf_config["cluster"]["worker"]
        task = tf_config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"TF_CONFIG is not valid ({error!r}): expected JSON with cluster.worker (a list of "
            f"host:port) and task.type/task.index. Received: {raw!r}"
        ) from error
    if not 0 <= index < len(workers):
        raise ValueError(f"TF_CONFIG task.index={index} but the cluster has {len(workers)} workers.")
    return tf_config


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the strategy for `name`: default, one_device, mirrored or multi_worker.

    Raises:
        ValueError: for an unknown name or a missing/invalid TF_CONFIG.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}. Expected one of {', '.join(STRATEGIES)}.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        # With no GPU, MirroredStrategy() mirrors over the logical CPUs (see split_cpu).
        return tf.distribute.MirroredStrategy()
    _check_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes checkpoints, summaries and exports."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())

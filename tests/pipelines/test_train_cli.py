"""The command line: flags, help, and what a bad input prints."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import train as train_cli
from tf3dgan import config as config_lib

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, env_extra=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "pipelines.train", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_help_lists_every_config_field():
    result = _run("--help")
    assert result.returncode == 0
    for name in config_lib.field_owners():
        assert f"--{name}" in result.stdout, name


def test_flags_override_the_preset():
    args = train_cli.parse_args(["--preset", "paper64", "--resolution", "32", "--prior", "normal",
                                 "--generator_learning_rate", "1e-4", "--cpu_devices", "2"])
    from pipelines import flags
    config = flags.config_from_flags(args)
    assert config.model.resolution == 32 and config.model.prior == "normal"
    assert config.train.generator_learning_rate == 1e-4 and config.train.batch_size == 100
    assert config.preset == "paper64"


@pytest.mark.parametrize("args, message", [
    (["--preset", "huge"], "error: Unknown preset 'huge'. Expected one of cpu32, cpu32_chairs, cpu32_recognition, cpu32_vae, paper64, paper64_vae, smoke, smoke_vae"),
    (["--strategy", "tpu"], "argument --strategy: invalid choice: 'tpu'"),
    (["--batch_size", "many"], "argument --batch_size: invalid int value: 'many'"),
    (["--train_steps", "150"], "train_steps=150 is not a multiple of steps_per_epoch=100"),
    (["--resolution", "48"], "argument --resolution: invalid choice: 48"),
])
def test_bad_flags_say_what_is_wrong(args, message):
    result = _run(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_missing_data_path_fails_with_the_fix(tmp_path):
    result = _run("--preset", "smoke", "--workdir", str(tmp_path), "--data", "npz",
                  "--data_path", str(tmp_path / "missing.npz"))
    assert result.returncode == 1
    assert "does not exist. Pass --data_path with the path of an .npz file" in result.stderr


def test_multi_worker_without_tf_config_fails_with_an_example(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    result = subprocess.run([sys.executable, "-m", "pipelines.train", "--preset", "smoke", "--workdir",
                             str(tmp_path), "--strategy", "multi_worker"], cwd=ROOT,
                            env=dict(env, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "--strategy=multi_worker needs the TF_CONFIG environment variable" in result.stderr

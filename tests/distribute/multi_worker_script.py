"""One worker of a two-process MultiWorkerMirroredStrategy run (started by test_multi_worker.py).

Usage: TF_CONFIG=... python multi_worker_script.py WORKDIR OUTPUT.npz
Trains the smoke preset with --strategy multi_worker and writes the final
weights of both networks to OUTPUT.npz.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tf3dgan import config as config_lib  # noqa: E402
from tf3dgan import training  # noqa: E402


def main(workdir: str, output: str) -> None:
    config = config_lib.SMOKE.replace(strategy="multi_worker", train_steps=4, steps_per_epoch=2)
    result = training.train(config, workdir, verbose=0)
    gan = result.gan
    np.savez(output, step=result.step, **{w.path: w.numpy() for w in gan.weights})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

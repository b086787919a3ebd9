"""A real two-process MultiWorkerMirroredStrategy run on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "multi_worker_script.py")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_end_with_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                         "task": {"type": "worker", "index": index}}))
        log = open(tmp_path / f"worker{index}.log", "w")
        processes.append((subprocess.Popen(
            [sys.executable, SCRIPT, str(tmp_path / "run"), str(tmp_path / f"weights{index}.npz")],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), log))
    try:
        for process, log in processes:
            process.wait(timeout=300)
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
            log.close()
    for index, (process, _) in enumerate(processes):
        if process.returncode != 0:
            pytest.fail(f"worker {index} exited with {process.returncode}:\n"
                        + (tmp_path / f"worker{index}.log").read_text()[-3000:])

    chief, other = (np.load(tmp_path / f"weights{i}.npz") for i in range(2))
    assert int(chief["step"]) == int(other["step"]) == 4
    assert sorted(chief.files) == sorted(other.files)
    for name in chief.files:
        np.testing.assert_allclose(chief[name], other[name], rtol=0, atol=1e-6, err_msg=name)
    # They trained: the weights moved away from a fresh initialization's.
    assert chief["gan3d/d_gate_open"].dtype == bool
    # Only the chief writes checkpoints, samples and the export.
    run = tmp_path / "run"
    assert (run / "checkpoints" / "checkpoint").exists()
    assert (run / "export" / "4" / "saved_model.pb").exists()
    assert not list(run.glob("worker_scratch_*"))

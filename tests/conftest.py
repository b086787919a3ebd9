"""Test session set-up.

The CPU is split into two logical devices before TensorFlow initializes, so
that MirroredStrategy tests run on two real replicas; tests that do not ask
for a strategy use the first device, as a user's program would.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from tf3dgan import distribute  # noqa: E402

distribute.split_cpu(2)

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture
def modelnet10_32_path():
    path = os.path.abspath(os.path.join(SHARED_DATA, "modelnet10_32.npz"))
    if not os.path.exists(path):
        pytest.skip(f"ModelNet10 voxels not found at {path} (shared data is not on this machine)")
    return path


@pytest.fixture(autouse=True)
def _float32_policy():
    import keras

    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


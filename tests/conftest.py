"""Test configuration: one Keras backend per process, visible in every test id.

Run every backend with ``python tests/run_backends.py``; one backend with
``KERAS_BACKEND=torch python -m pytest``.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()


def _limit_threads() -> None:
    n = int(os.environ.get("KERAS_RECIPES_TEST_THREADS", "0") or 0)
    if n <= 0:
        return
    if BACKEND == "torch":
        import torch

        torch.set_num_threads(n)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(n)
        except RuntimeError:
            pass


_limit_threads()


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend: {BACKEND}"


@pytest.fixture(autouse=True)
def keras_backend():
    """The backend of this process; parametrized so it shows in each test id."""
    keras.utils.set_random_seed(0)
    yield BACKEND
    keras.config.set_dtype_policy("float32")


def pytest_generate_tests(metafunc):
    if "keras_backend" in metafunc.fixturenames:
        # indirect: the fixture above still runs (a direct parametrization would replace it
        # with the value, skipping the seeding and the policy reset).
        metafunc.parametrize("keras_backend", [BACKEND], ids=[BACKEND], scope="function",
                             indirect=True)


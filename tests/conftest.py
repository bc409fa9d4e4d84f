"""Shared fixtures: where the real MNIST files live, and optional PyTorch."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _mnist_dir():
    env = os.environ.get("FASTCONV_TEST_MNIST")
    if env:
        return Path(env)
    return REPO.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir():
    """The folder of the four real MNIST .gz files (read-only; never downloaded)."""
    d = _mnist_dir()
    if not (d / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"real MNIST files not found in {d}; set FASTCONV_TEST_MNIST")
    return d


import fastconv  # noqa: E402


@pytest.fixture(params=["c", "numpy"])
def backend(request):
    """Run the test once per backend; "c" is skipped, visibly, when it is not built."""
    if request.param not in fastconv.available_backends():
        pytest.skip("the C extension is not built")
    with fastconv.use_backend(request.param):
        yield request.param


def pytest_report_header(config):
    return (f"fastconv backends: {fastconv.available_backends()}, "
            f"openmp: {fastconv.openmp_enabled()}, threads: {fastconv.get_num_threads()}")


def pytest_collection_modifyitems(config, items):
    # Tests that read the real MNIST files carry the "mnist" marker, so a wheel
    # test run on a machine without ../shared can deselect them explicitly
    # (-m "not mnist"); where they are collected, missing data is a failure.
    for item in items:
        if "mnist_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mnist)

"""Shared fixtures: where the real MNIST files live, backends and thread counts."""
import contextlib
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
from fastconv._runtime import force_parallel_split, last_team_size  # noqa: E402


# The C backend at 1, 2 and 3 threads. Test inputs are small, so every call is
# forced to split its work (grain 1); otherwise they would all run on one thread
# and the oracle comparisons would never see the parallel code paths.
THREAD_COUNTS = (1, 2, 3)
_SETTINGS = [f"c-{n}t" for n in THREAD_COUNTS] + ["numpy"]


@contextlib.contextmanager
def running_on(setting):
    """Inside: the backend and thread count that ``setting`` names ("c-2t", "numpy")."""
    name, _, threads = setting.partition("-")
    if name not in fastconv.available_backends():
        pytest.skip("the C extension is not built")
    threads = int(threads[:-1]) if threads else None
    with fastconv.use_backend(name), force_parallel_split(), fastconv.use_num_threads(threads):
        last_team_size(reset=True)
        yield name, threads


@pytest.fixture(params=_SETTINGS)
def backend(request):
    """Run the test on the NumPy backend and on the C backend at 1, 2 and 3
    threads; yields the backend's name. At 2 and 3 threads the test fails
    unless some kernel call really ran on a team of more than one thread."""
    with running_on(request.param) as (name, threads):
        yield name
        if threads and threads > 1 and fastconv.openmp_enabled():
            team = last_team_size()
            assert team > 1, (f"at {threads} threads no kernel call of this test ran on more "
                              f"than one thread (last team {team})")


@pytest.fixture(params=["c", "numpy"])
def any_backend(request):
    """Once per backend, thread count left alone: for tests that check what
    happens before any kernel runs (errors, shapes)."""
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

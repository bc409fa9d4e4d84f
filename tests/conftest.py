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
from fastconv._testing import force_parallel_split, last_team_size  # noqa: E402


# --- test profiles ---------------------------------------------------------------
#
# FASTCONV_TEST_PROFILE=emulated (set by scripts/test_wheel.sh for the aarch64
# wheel, which runs under qemu-user, roughly 20-50x slower than native) keeps
# every test file and test function, but runs less of each:
# - the backend fixture runs numpy, c-1t and c-2t, not c-3t: the single-thread
#   and the parallel code paths (and the team-size check) still run;
# - hypothesis loads the "emulated" profile: derandomised as in CI, no
#   deadline, and at most EMULATED_MAX_EXAMPLES examples per property test
#   (tests that ask for more in their @settings are capped to it, see
#   pytest_collection_modifyitems).
# Nothing is skipped for emulation; the header names the profile in effect.
TEST_PROFILE = os.environ.get("FASTCONV_TEST_PROFILE", "default")
if TEST_PROFILE not in ("default", "emulated"):
    raise pytest.UsageError(f"FASTCONV_TEST_PROFILE={TEST_PROFILE!r}: "
                            "expected 'default' or 'emulated'")
EMULATED = TEST_PROFILE == "emulated"
EMULATED_MAX_EXAMPLES = 10

# The C backend at 1, 2 and 3 threads (1 and 2 under emulation). Test inputs are
# small, so every call is forced to split its work (grain 1); otherwise they
# would all run on one thread and the oracle comparisons would never see the
# parallel code paths.
THREAD_COUNTS = (1, 2) if EMULATED else (1, 2, 3)
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
    threads (1 and 2 under the emulated profile); yields the backend's name. At 2 and 3 threads the test fails
    unless some kernel call really ran on a team of more than one thread."""
    with running_on(request.param) as (name, threads):
        yield name
        call = getattr(request.node, "fastconv_call_report", None)
        if call is not None and call.passed and threads and threads > 1 \
                and fastconv.openmp_enabled():
            team = last_team_size()
            assert team > 1, (f"at {threads} threads no kernel call of this test ran on more "
                              f"than one thread (last team {team})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Keeps the call phase's report on the item, for fixtures' teardown.
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.fastconv_call_report = report


@pytest.fixture(params=["c", "numpy"])
def any_backend(request):
    """Once per backend, thread count left alone: for tests that check what
    happens before any kernel runs (errors, shapes)."""
    if request.param not in fastconv.available_backends():
        pytest.skip("the C extension is not built")
    with fastconv.use_backend(request.param):
        yield request.param


def pytest_report_header(config):
    seed = getattr(config.option, "hypothesis_seed", None)
    lines = [f"fastconv backends: {fastconv.available_backends()}, "
             f"openmp: {fastconv.openmp_enabled()}, threads: {fastconv.get_num_threads()}, "
             f"oracle tests at {THREAD_COUNTS} threads; hypothesis seed: "
             f"{seed if seed is not None else 'random'}{' (CI, derandomised)' if _CI else ''}"]
    if EMULATED:
        lines.append(f"fastconv test profile: emulated (backend fixture: {_SETTINGS}; "
                     f"hypothesis profile 'emulated': derandomised, at most "
                     f"{EMULATED_MAX_EXAMPLES} examples per test, no deadline)")
    return lines


# Tests that take minutes under qemu-user, measured on the aarch64 wheel
# (scripts/test_wheel.sh deselects them there with -m "not emulation_heavy";
# everywhere else they run). Each one trains a network, runs a whole command in
# a child interpreter (every child starts qemu and imports numpy again), or runs
# `fastconv bench`; none is an oracle comparison of a kernel that the rest of
# the suite does not also make on small inputs. Keys are "file::test" (every
# parametrisation) or fnmatch patterns on "file::test[params]".
EMULATION_HEAVY = {
    # one `fastconv bench --quick` shared by the four (~2 min under qemu)
    "test_bench.py::test_quick_json_has_every_section_and_target": "fastconv bench --quick",
    "test_bench.py::test_quick_figures_are_finite_and_positive": "fastconv bench --quick",
    "test_bench.py::test_quick_kernel_copy_is_the_size_of_the_columns": "fastconv bench --quick",
    "test_bench.py::test_quick_tables_have_a_row_per_json_row": "fastconv bench --quick",
    # DeepConvNet on the book's pickles (~25 s each); SimpleConvNet's still run
    "test_book_pickle.py::test_deep_convnet_gives_the_books_test_time_scores": "DeepConvNet",
    "test_book_pickle.py::test_deep_convnet_gives_the_books_training_scores_too": "DeepConvNet",
    # the book's scripts in a child interpreter: training, DeepConvNet (40-65 s each)
    "test_book_scripts.py::test_train_convnet_runs_unchanged_and_prints_as_the_book": "trains",
    "test_book_scripts.py::test_deep_convnet_scripts_give_fastconvs_converted_predictions":
        "child DeepConvNet",
    "test_book_scripts.py::test_float32_mode_trains_on_float32_and_keeps_the_books_arrays":
        "trains",
    # where the stand-in finds MNIST: all of it read (and pickled) per case, the
    # book's own loader included, or read in a child interpreter (listed from their
    # native times, not measured under qemu)
    "test_book_scripts.py::test_a_readers_book_folder_serves_mnist": "child reads all of MNIST",
    "test_book_scripts.py::test_the_books_folder_comes_first_then_its_pickle_then_fastconv_data":
        "all of MNIST per case (5)",
    "test_book_scripts.py::test_the_stand_in_returns_what_the_books_loader_returns":
        "the book's loader and the stand-in on all of MNIST (8 flag sets)",
    "test_book_scripts.py::test_a_truncated_gz_in_the_books_folder_is_one_clear_line":
        "child reads the training images",
    # the book's repository: every ch03-ch08 script in two child interpreters (on
    # fastconv and on the book's own code; 0.5-10 s each natively, not measured
    # under qemu), the 2016 weights on 10,000 test images in a child
    "test_book_repo.py::test_the_books_script_prints_what_the_books_code_prints":
        "the book's scripts in children, twice (33)",
    "test_book_repo.py::test_the_2016_weights_score_as_in_the_book": "child DeepConvNet",
    # fastconv viz / train in child interpreters; test_cli's shared small_run
    # (one fastconv train) and the tests on it still run
    "test_checkpoint.py::test_png_written_by_viz_is_atomic": "child fastconv viz",
    "test_cli.py::test_train_module_entry_point": "child fastconv train",
    "test_cli.py::test_train_is_reproducible_and_seeded": "two fastconv train runs",
    "test_cli.py::test_train_other_models": "fastconv train of lenet/deep/alexnet (up to 2.5 min)",
    "test_cli.py::test_train_numpy_backend": "fastconv train",
    "test_cli.py::test_train_cosine_schedules": "fastconv train (2)",
    "test_cli.py::test_train_presets_and_overrides": "three fastconv train runs",
    "test_cli.py::test_viz_writes_pictures": "fastconv viz",
    "test_cli.py::test_train_on_a_full_disk_keeps_the_previous_run": "fastconv train",
    "test_cli.py::test_ctrl_c_saves_a_checkpoint": "child fastconv train",
    "test_export_modelcard.py::test_train_writes_a_full_card_and_the_folder_is_enough":
        "fastconv train",
    "test_predict.py::test_rerendered_digits_are_recognised_as_well_as_direct_ones": "trains",
    # numerical gradients of the two large models; SimpleConvNet, LeNet and
    # the batch-norm net still run on every backend setting
    "test_models.py::test_gradient_matches_numerical_gradient[*-AlexNet]": "AlexNet",
    "test_models.py::test_gradient_matches_numerical_gradient[*-DeepConvNet]": "DeepConvNet",
}


# Module-scoped set-ups that train under qemu for minutes; every test that
# uses one is emulation-heavy (measured 2026-12-01: 214 s and 160 s).
EMULATION_HEAVY_FIXTURES = {
    "test_export.py": "nets",     # trains every model a few steps
    "test_predict.py": "trained",  # one epoch on 10,000 images
}
EMULATION_HEAVY["test_cli.py::test_eval_confusion_matrix"] = "fastconv eval of a run (64 s)"


def _emulation_heavy(item):
    import fnmatch
    base = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
    full = f"{item.path.name}::{item.name}"
    if EMULATION_HEAVY_FIXTURES.get(item.path.name) in getattr(item, "fixturenames", ()):
        return True
    return any(key == base or fnmatch.fnmatchcase(full, key.replace("[", "[[]"))
               for key in EMULATION_HEAVY)


def pytest_collection_modifyitems(config, items):
    # Tests that read the real MNIST files carry the "mnist" marker, so a wheel
    # test run on a machine without ../shared can deselect them explicitly
    # (-m "not mnist"); where they are collected, missing data is a failure.
    for item in items:
        if "mnist_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mnist)
        if _emulation_heavy(item):
            item.add_marker(pytest.mark.emulation_heavy)
        if EMULATED:
            _cap_examples(item)


def _cap_examples(item):
    """Under the emulated profile: at most EMULATED_MAX_EXAMPLES examples for a
    hypothesis test, whatever its @settings asks for. An explicit max_examples
    overrides a loaded profile, hence this. It replaces the settings @given
    keeps on the test (hypothesis' attribute, pinned in scripts/lock/test-*.txt);
    if that attribute ever goes away the run fails here instead of silently
    running the full counts."""
    from hypothesis import settings
    function = getattr(item, "function", None)
    if not getattr(function, "is_hypothesis_test", False):
        return
    current = function._hypothesis_internal_use_settings
    if current.max_examples > EMULATED_MAX_EXAMPLES:
        function._hypothesis_internal_use_settings = settings(
            current, max_examples=EMULATED_MAX_EXAMPLES)


# --- CI: a missing oracle is a failure, not a skip ------------------------------
#
# With FASTCONV_CI=1 (set by .ci/run) every skip must carry one of the reasons
# below, and nothing else may skip: if torch stopped importing, or the
# large-index test found too little memory, the run fails instead of staying
# green with its oracles gone. Hypothesis then also runs derandomised from a
# fixed seed, printed in the header; locally the seed is random.
ALLOWED_SKIPS_IN_CI = (
    # The wheel is also tested under emulation on aarch64, where there is no
    # torch wheel for the interpreter used and no AVX2.
    *(("could not import 'torch'", "this CPU has no AVX2+FMA")
      if os.environ.get("FASTCONV_CI_NO_TORCH") else ()),
    # The blocked kernels' AVX-512 build (tests/test_blocked_conv.py) where the
    # CI machine has no AVX-512.
    "this CPU has no AVX-512",
)
_CI = os.environ.get("FASTCONV_CI") == "1"
_CI_SEED = 20261130


def pytest_configure(config):
    from hypothesis import settings
    settings.register_profile("ci", derandomize=True, print_blob=True)
    settings.register_profile("emulated", derandomize=True, print_blob=True,
                              max_examples=EMULATED_MAX_EXAMPLES, deadline=None)
    if EMULATED:
        settings.load_profile("emulated")
    elif _CI:
        settings.load_profile("ci")
    if _CI and getattr(config.option, "hypothesis_seed", None) is None:
        config.option.hypothesis_seed = _CI_SEED


def _skip_reason(report):
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = {}
    for report in skipped:
        reason = _skip_reason(report)
        reasons[reason] = reasons.get(reason, 0) + 1
    terminalreporter.section("skip summary")
    terminalreporter.write_line(f"{len(skipped)} skipped; thread counts exercised by the "
                                f"backend fixture: {THREAD_COUNTS}; test profile: "
                                f"{TEST_PROFILE}")
    for reason, count in sorted(reasons.items()):
        terminalreporter.write_line(f"{count:5}  {reason}")
    if _CI:
        bad = [r for r in reasons if not any(ok in r for ok in ALLOWED_SKIPS_IN_CI)]
        if bad:
            terminalreporter.write_line("FASTCONV_CI=1: skips for reasons not allowed in CI "
                                        f"(an oracle is missing): {bad}", red=True)


def pytest_sessionfinish(session, exitstatus):
    if _CI and exitstatus == 0:
        skipped = session.config.pluginmanager.get_plugin("terminalreporter")
        reasons = [_skip_reason(r) for r in skipped.stats.get("skipped", [])] if skipped else []
        if any(not any(ok in r for ok in ALLOWED_SKIPS_IN_CI) for r in reasons):
            session.exitstatus = 1

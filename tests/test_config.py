"""The installation itself: show_config(), OpenMP and the ISA the build chose,
bit-exact Adam (the -ffp-contract setting), the version's single source, and the
command line's message when its extra is missing.

FASTCONV_EXPECT_OPENMP=1 makes OpenMP mandatory (wheels are built with it);
=bundled also requires the OpenMP runtime to be the copy inside the installed
wheel (auditwheel's fastconv.libs, delocate's .dylibs, delvewheel's .libs).
"""
import importlib.metadata
import io
import os
import pathlib
import platform
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastconv
from fastconv import functional as F

needs_ext = pytest.mark.skipif("c" not in F.available_backends(),
                               reason="compiled extension not importable")
EXPECT_OPENMP = os.environ.get("FASTCONV_EXPECT_OPENMP", "")


def _cpu_flags():
    """The x86 feature flags the kernel reports to user space (/proc/cpuinfo)."""
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def test_show_config_prints_every_field():
    buf = io.StringIO()
    fastconv.show_config(file=buf)
    text = buf.getvalue()
    cfg = fastconv.build_config()
    for key in ("fastconv:", "python:", "extension:", "compiler:", "openmp:",
                "openmp runtime:", "direct conv ISA:", "threads:", "backend:", "numpy BLAS:"):
        assert key in text, (key, text)
    assert f"fastconv:        {fastconv.__version__}" in text
    assert cfg["threads"] == F.get_num_threads()
    assert cfg["backend"] == F.get_backend()
    # numpy always loads a BLAS that threadpoolctl can see in the wheels we ship
    assert cfg["blas"], cfg


def test_version_has_one_source():
    assert fastconv.__version__ == importlib.metadata.version("fastconv")


@needs_ext
def test_build_is_described():
    cfg = fastconv.build_config()
    assert cfg["compiler"] and cfg["compiler"] != "unknown"
    assert pathlib.Path(cfg["extension"]).is_file()
    assert cfg["openmp"] == F.openmp_enabled()
    assert (cfg["openmp_spec"] > 0) == cfg["openmp"]


@needs_ext
def test_direct_kernel_isa_is_the_intended_one():
    cfg = fastconv.build_config()
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        flags = _cpu_flags()
        if flags is None:
            pytest.skip("no /proc/cpuinfo to read the CPU's features from")
        expected = "avx2" if {"avx2", "fma"} <= flags else "baseline"
        if os.environ.get("FASTCONV_ISA", "").strip().lower() == "baseline":
            expected = "baseline"  # the cap the user (or CI's second run) chose
    elif machine in ("aarch64", "arm64"):
        expected = "baseline"   # one build, NEON through the vector extensions
    else:
        pytest.skip(f"no expectation for {machine}")
    if not cfg["direct_conv"]:
        assert sys.platform == "win32", "only the MSVC build lacks the direct kernel"
        expected = "none"
    assert cfg["isa"] == expected


@pytest.mark.skipif(not EXPECT_OPENMP, reason="FASTCONV_EXPECT_OPENMP not set")
@needs_ext
def test_openmp_enabled_and_its_runtime_loaded():
    cfg = fastconv.build_config()
    assert cfg["openmp"], "this build was expected to use OpenMP"
    assert F.openmp_enabled()
    assert cfg["openmp_runtime"], "no OpenMP runtime is loaded"
    if EXPECT_OPENMP == "bundled":
        site = pathlib.Path(fastconv.__file__).resolve().parent.parent
        bundled = [lib["filepath"] for lib in cfg["openmp_runtime"]
                   if pathlib.Path(lib["filepath"]).resolve().is_relative_to(site)
                   and "fastconv" in lib["filepath"]]
        assert bundled, ("the OpenMP runtime is not the wheel's own copy",
                         cfg["openmp_runtime"])


@needs_ext
@pytest.mark.parametrize("threads", [1, 2])
@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from([np.float32, np.float64]), data=st.data())
def test_adam_kernel_is_bit_exact_against_numpy(threads, dtype, data):
    # Same operations in the same order as the NumPy backend: with contraction off
    # (CMakeLists.txt) no a*b+c is fused, so every bit agrees on every compiler.
    n = data.draw(st.integers(1, 300))
    finite = st.floats(-1e3, 1e3, width=32)
    p, g, m = (data.draw(hnp.arrays(dtype, n, elements=finite)) for _ in range(3))
    v = np.abs(data.draw(hnp.arrays(dtype, n, elements=finite)))
    lr = data.draw(st.sampled_from([1e-3, 0.1, 0.37]))
    ours, theirs = [a.copy() for a in (p, m, v)], [a.copy() for a in (p, m, v)]
    before = F.get_num_threads()
    F.set_num_threads(threads)
    try:
        with F.use_backend("c"):
            F.adam_update(ours[0], g, ours[1], ours[2], lr, 0.9, 0.999, 1e-7)
    finally:
        F.set_num_threads(before)
    with F.use_backend("numpy"):
        F.adam_update(theirs[0], g, theirs[1], theirs[2], lr, 0.9, 0.999, 1e-7)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("command, missing", [
    (["train", "--epochs", "1"], "matplotlib"),
    (["eval", "--params", "nowhere.npz"], "matplotlib"),
])
def test_cli_names_the_extra_when_plot_libraries_are_missing(monkeypatch, capsys,
                                                             command, missing):
    from fastconv import cli

    monkeypatch.setitem(sys.modules, missing, None)   # import now raises ImportError
    assert cli.main(command) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert missing in err and "pip install 'fastconv[cli]'" in err


@needs_ext
@pytest.mark.parametrize("value, isa", [("baseline", "baseline"), (" AVX2 ", None),
                                        ("avx512", None), ("sse9", None)])
def test_fastconv_isa_caps_the_direct_kernels(value, isa):
    code = ("import warnings; warnings.simplefilter('always')\n"
            "import fastconv, fastconv._ext as e\n"
            "cfg = fastconv.build_config()\n"
            "print(cfg['isa'], cfg['isa_cap'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "FASTCONV_ISA": value})
    assert proc.returncode == 0, proc.stderr
    got_isa, got_cap = proc.stdout.split()
    native = fastconv.build_config()["isa"] if os.environ.get("FASTCONV_ISA") is None else None
    if value == "sse9":
        assert got_cap == "None" and "FASTCONV_ISA must be one of" in proc.stderr
    else:
        assert got_cap == value.strip().lower() and not proc.stderr
    if isa is not None:
        assert got_isa == isa
    elif native is not None:
        assert got_isa == native  # a cap at or above the CPU's best changes nothing

"""Threads: OpenMP is really there, results do not depend on the thread count,
Python threads may share the kernels, and a forked child does not hang."""
import os
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastconv
from fastconv._testing import force_parallel_split, use_conv_plan

pytestmark = pytest.mark.skipif("c" not in fastconv.available_backends(),
                                reason="compiled extension not built")


@pytest.fixture
def c_backend(monkeypatch):
    # Small test arrays would otherwise run on one thread (see _runtime._GRAIN).
    with force_parallel_split(), fastconv.use_backend("c"), fastconv.use_num_threads(None):
        yield


def test_extension_was_built_with_openmp():
    assert fastconv.openmp_enabled()
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from fastconv import _ext
    apis = {i["internal_api"] for i in threadpoolctl.threadpool_info()}
    assert "openmp" in apis, f"no OpenMP runtime loaded alongside {_ext.__file__}"


def run_all_ops(x):
    k = (3, 2)
    out = {"im2col": fastconv.im2col(x, *k, stride=(2, 1), pad=1)}
    out["col2im"] = fastconv.col2im(out["im2col"] * 1.5, x.shape, *k, stride=(2, 1), pad=1)
    out["unfold"] = fastconv.unfold(x, k, dilation=(1, 2), padding=(1, 2))
    out["fold"] = fastconv.fold(out["unfold"], x.shape[2:], k, dilation=(1, 2), padding=(1, 2))
    out["max"], out["argmax"] = fastconv.max_pool2d(x, 3, 1, 1, return_indices=True)
    out["max_back"] = fastconv.max_pool2d_backward(out["max"], out["argmax"], x.shape)
    out["avg"] = fastconv.avg_pool2d(x, 3, 1, 1)
    out["avg_back"] = fastconv.avg_pool2d_backward(out["avg"], x.shape, 3, 1, 1)
    # The convolution family on each of its plans, and the Adam kernel.
    w = np.linspace(-1, 1, 4 * x.shape[1] * 9).reshape(4, x.shape[1], 3, 3).astype(x.dtype)
    for plan in ("direct", "per_image", "rows"):
        with use_conv_plan(plan):
            y = fastconv.conv2d(x, w, None, 1, 1)
            out[f"conv2d {plan}"] = y
            out[f"conv2d dW {plan}"] = fastconv.conv2d_weight_grad(x, y, w.shape, 1, 1)
            out[f"conv2d dx {plan}"] = fastconv.conv2d_input_grad(y, w, x.shape, 1, 1)
    p, m, v = (np.full(5000, a, x.dtype) for a in (1.0, 0.1, 0.2))
    fastconv.functional.adam_update(p, np.linspace(-1, 1, 5000).astype(x.dtype), m, v, 0.01)
    out["adam"] = p
    return out


@pytest.mark.parametrize("n", [1, 3, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_does_not_change_a_bit(c_backend, n, dtype):
    x = np.random.default_rng(n).standard_normal((n, 5, 13, 11)).astype(dtype)
    results = {}
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        assert fastconv.get_num_threads() == threads
        results[threads] = run_all_ops(x)
    for threads in (2, 3):
        for name, value in results[1].items():
            assert results[threads][name].tobytes() == value.tobytes(), (threads, name)


def test_python_threads_share_kernels(c_backend):
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((4, 3, 12, 12)) for _ in range(8)]
    expected = [run_all_ops(x) for x in inputs]
    failures = []
    barrier = threading.Barrier(len(inputs))

    def work(i):
        barrier.wait()
        for _ in range(5):
            got = run_all_ops(inputs[i])
            for name, value in expected[i].items():
                if not np.array_equal(got[name], value):
                    failures.append((i, name))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in workers)
    assert not failures


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="n must be a positive int or None, got 0"):
        fastconv.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be a positive int or None, got 2.0"):
        fastconv.set_num_threads(2.0)


def test_threadpoolctl_limits_the_default(c_backend):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    fastconv.set_num_threads(None)

    def openmp_pools():
        return [p for p in threadpoolctl.threadpool_info() if p["internal_api"] == "openmp"]

    with threadpoolctl.threadpool_limits(1):
        assert fastconv.get_num_threads() == 1
        assert openmp_pools() and all(p["num_threads"] == 1 for p in openmp_pools())
    with threadpoolctl.threadpool_limits(2, user_api="openmp"):
        assert fastconv.get_num_threads() == 2
        assert all(p["num_threads"] == 2 for p in openmp_pools())


def test_python_threads_share_training_steps(c_backend):
    # Eight networks trained side by side in eight threads end with the
    # parameters of the same eight trained one after the other (to float
    # rounding: BLAS may split a product differently under concurrency).
    from fastconv.nn import SimpleConvNet
    from fastconv.train.optim import Adam

    rng = np.random.default_rng(5)
    data = [(rng.random((16, 1, 12, 12), dtype=np.float32), rng.integers(0, 10, 16))
            for _ in range(8)]

    def train(i):
        net = SimpleConvNet((1, 12, 12), {"filter_num": 4, "filter_size": 3}, hidden_size=8,
                            seed=i)
        opt = Adam()
        for _ in range(3):
            _, grads = net.loss_and_gradient(*data[i])
            opt.update(net.params, grads)
        return net.params

    expected = [train(i) for i in range(8)]
    results = [None] * 8
    workers = [threading.Thread(target=lambda i=i: results.__setitem__(i, train(i)))
               for i in range(8)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    for want, got in zip(expected, results):
        assert got is not None
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6,
                                       err_msg=name)


def run_python(code, env=None, timeout=120):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def test_omp_num_threads_is_honoured():
    proc = run_python("import fastconv; print(fastconv.get_num_threads())",
                      env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"


FORK_CHILD = """
    import os, sys
    import numpy as np
    import fastconv
    fastconv.set_num_threads(4)
    x = np.random.default_rng(0).standard_normal((16, 8, 20, 20))
    want = fastconv.col2im(fastconv.im2col(x, 3, 3, pad=1), x.shape, 3, 3, pad=1)
    pid = os.fork()
    if pid == 0:
        # The parent ran parallel regions; libgomp would hang here without
        # fastconv falling back to one thread.
        ok = fastconv.get_num_threads() == 1
        got = fastconv.col2im(fastconv.im2col(x, 3, 3, pad=1), x.shape, 3, 3, pad=1)
        _, idx = fastconv.max_pool2d(x, 2, return_indices=True)
        os._exit(0 if ok and np.array_equal(got, want) else 3)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status))
    again = fastconv.col2im(fastconv.im2col(x, 3, 3, pad=1), x.shape, 3, 3, pad=1)
    print("parent", fastconv.get_num_threads(), np.array_equal(again, want))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_after_parallel_parent_finishes():
    # A hang shows up as TimeoutExpired, which fails the test instead of CI.
    proc = run_python(FORK_CHILD, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["child", "0", "parent", "4", "True"]


# Each step of the child asks for threads again, the ways a user would; each
# is a parallel region that libgomp would never finish after the parent's.
FORK_ASKS_AGAIN = """
    import os, sys, warnings
    import numpy as np
    import fastconv
    from fastconv._testing import last_team_size

    x = np.random.default_rng(0).standard_normal((16, 8, 40, 40))
    def work():
        return fastconv.col2im(fastconv.im2col(x, 3, 3, pad=1), x.shape, 3, 3, pad=1)
    fastconv.set_num_threads(2)
    last_team_size(reset=True)
    want = work()
    assert last_team_size() == 2, "the parent must really have run a team of two"

    def child(depth):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fastconv.set_num_threads(2)
            first = fastconv.get_num_threads()
            a = work()
            fastconv.set_num_threads(None)
            with fastconv.use_num_threads(3):
                inside = fastconv.get_num_threads()
                b = work()
        messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
        assert len(messages) == 2, messages
        assert all("spawn" in m and "forkserver" in m for m in messages), messages
        assert (first, inside, fastconv.get_num_threads()) == (1, 1, 1)
        assert fastconv.fork_limits_threads()
        assert np.array_equal(a, want) and np.array_equal(b, want)
        if depth == 1:  # a grandchild, forked from this child
            pid = os.fork()
            if pid == 0:
                try:
                    child(2)
                except BaseException as exc:
                    print("grandchild:", repr(exc), file=sys.stderr, flush=True)
                    os._exit(3)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, "grandchild failed"

    pid = os.fork()
    if pid == 0:
        try:
            child(1)
        except BaseException as exc:
            print("child:", repr(exc), file=sys.stderr, flush=True)
            os._exit(3)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert not fastconv.fork_limits_threads()
    print("child", os.waitstatus_to_exitcode(status), fastconv.get_num_threads())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_asking_for_threads_again_does_not_hang():
    # Before the fix the child's set_num_threads(2) was honoured and its first
    # kernel hung in libgomp: here a TimeoutExpired.
    try:
        proc = run_python(FORK_ASKS_AGAIN, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("a forked child that asked for threads again hung")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["child", "0", "2"], proc.stderr


POOL_INITIALIZER = """
    import multiprocessing as mp
    import warnings
    import numpy as np
    import fastconv

    def init(n):
        warnings.simplefilter("ignore", RuntimeWarning)
        fastconv.set_num_threads(n)

    def job(seed):
        x = np.random.default_rng(seed).standard_normal((16, 8, 40, 40))
        got = fastconv.col2im(fastconv.im2col(x, 3, 3, pad=1), x.shape, 3, 3, pad=1)
        return fastconv.get_num_threads(), fastconv.fork_limits_threads(), float(got.sum())

    if __name__ == "__main__":
        fastconv.set_num_threads(2)
        want = [job(s)[2] for s in range(4)]
        for method in ("fork", "spawn", "forkserver"):
            with mp.get_context(method).Pool(2, initializer=init, initargs=(2,)) as pool:
                results = pool.map(job, range(4))
            assert [r[2] for r in results] == want, method
            print(method, sorted({(r[0], r[1]) for r in results}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="all three start methods exist on Linux")
def test_pool_initializer_asking_for_threads(tmp_path):
    # fork workers stay at one thread (and finish); spawn and forkserver
    # workers get the two threads they asked for.
    script = tmp_path / "pools.py"
    script.write_text(textwrap.dedent(POOL_INITIALIZER))
    try:
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("a pool whose initializer asks for threads hung")
    assert proc.returncode == 0, proc.stderr
    two = "[(2, False)]" if fastconv.openmp_enabled() else "[(1, False)]"
    assert proc.stdout.splitlines() == ["fork [(1, True)]", f"spawn {two}",
                                        f"forkserver {two}"], proc.stdout


POOL_SCRIPT = """
    import multiprocessing as mp
    import numpy as np
    import fastconv

    def job(seed):
        x = np.random.default_rng(seed).standard_normal((16, 8, 20, 20))
        return float(fastconv.col2im(fastconv.im2col(x, 3, 3, pad=1), x.shape, 3, 3, pad=1).sum())

    if __name__ == "__main__":
        fastconv.set_num_threads(2)
        want = [job(s) for s in range(4)]
        for method in ("fork", "spawn", "forkserver"):
            with mp.get_context(method).Pool(2) as pool:
                assert pool.map(job, range(4)) == want, method
        print("ok")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="all three start methods exist on Linux")
def test_multiprocessing_pools_after_parallel_parent(tmp_path):
    script = tmp_path / "pools.py"
    script.write_text(textwrap.dedent(POOL_SCRIPT))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_openmp_waits_passively_unless_the_user_chose():
    # libgomp prints the settings it loaded with under OMP_DISPLAY_ENV; the
    # child's environment (and a grandchild's) must not keep fastconv's defaults.
    code = """
        import os, subprocess, sys
        import fastconv
        import numpy as np
        fastconv.conv2d(np.ones((1, 1, 4, 4)),
                        np.ones((1, 1, 2, 2)))
        grandchild = subprocess.run([sys.executable, "-c",
            "import os; print(os.environ.get('OMP_WAIT_POLICY'),"
            " os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"], capture_output=True, text=True)
        print(os.environ.get("OMP_WAIT_POLICY"), os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
        print(grandchild.stdout.strip())
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")}
    env["OMP_DISPLAY_ENV"] = "true"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-2:] == ["None None", "None None"], proc.stdout
    if fastconv.openmp_enabled():
        assert re.search(r"OMP_WAIT_POLICY\s*=\s*'PASSIVE'", proc.stderr), proc.stderr
    # A choice of the user's wins, and stays in the environment.
    proc = run_python(code, env={"OMP_WAIT_POLICY": "ACTIVE", "OMP_DISPLAY_ENV": "true"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-2:] == ["ACTIVE None", "ACTIVE None"], proc.stdout
    if fastconv.openmp_enabled():
        assert re.search(r"OMP_WAIT_POLICY\s*=\s*'ACTIVE'", proc.stderr), proc.stderr
"""The runtime: which backend runs, on how many threads, and what a fork does.

Everything here is process state that the ops in :mod:`fastconv.ops`
read at each call. Nothing outside this module touches its private names;
the tests' hooks are in :mod:`fastconv._testing`.
"""
import contextlib
import contextvars
import operator
import os
import threading
import warnings

# Two thread pools share the cores: numpy's OpenBLAS and fastconv's libgomp.
# Each one's idle workers spin by default and take a core from the other
# (a DeepConvNet training step took about twice as long: benchmarks/README.md).
# Both libraries read their setting from the environment once, when they are
# loaded, so fastconv passes its defaults then and takes them out again: a
# child process (a PyTorch job, say) must not inherit them. A value the user
# set wins. OpenBLAS only sees its value when numpy is first loaded here,
# that is when fastconv is imported before numpy.
_LOAD_TIME_DEFAULTS = {
    "OPENBLAS_THREAD_TIMEOUT": "4",   # sleep after 2**4 cycles instead of 2**28
    "OMP_WAIT_POLICY": "PASSIVE",     # libgomp's workers sleep when idle
}


@contextlib.contextmanager
def _environment_while_loading(defaults):
    added = [name for name in defaults if name not in os.environ]
    for name in added:
        os.environ[name] = defaults[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


with _environment_while_loading(_LOAD_TIME_DEFAULTS):
    import numpy  # noqa: F401  (loads OpenBLAS now, if nobody did before)
    try:
        from . import _ext as ext
    except ImportError as exc:  # the package still works, on NumPy
        ext = None
        _EXT_ERROR = exc
    else:
        _EXT_ERROR = None

__all__ = [
    "ext", "BACKENDS", "available_backends", "set_backend", "get_backend", "use_backend",
    "use_c", "openmp_enabled", "set_num_threads", "get_num_threads", "use_num_threads",
    "fork_limits_threads", "ISAS", "isa_cap",
    "max_threads_allowed", "threads_for", "grain", "blas_single_thread",
]

BACKENDS = ("c", "numpy")


def _warn_no_extension():
    warnings.warn(
        f"fastconv's compiled extension could not be imported ({_EXT_ERROR}); "
        "using the NumPy backend, which is much slower.",
        RuntimeWarning, stacklevel=3)


def _initial_backend():
    name = os.environ.get("FASTCONV_BACKEND", "c").strip().lower() or "c"
    if name not in BACKENDS:
        warnings.warn(f"FASTCONV_BACKEND must be one of {BACKENDS}, got {name!r}; using 'c'",
                      RuntimeWarning, stacklevel=2)
        name = "c"
    if name == "c" and ext is None:
        _warn_no_extension()  # said once, here at import
        name = "numpy"
    return name


_backend = _initial_backend()


# --- instruction sets -------------------------------------------------------------

ISAS = ("baseline", "avx2", "avx512")


def _initial_isa_cap():
    # FASTCONV_ISA caps what the direct kernels may use; the best build the
    # CPU runs below the cap is chosen (tests and benchmarks compare builds).
    name = os.environ.get("FASTCONV_ISA", "").strip().lower()
    if not name:
        return None
    if name not in ISAS:
        warnings.warn(f"FASTCONV_ISA must be one of {ISAS}, got {name!r}; ignored",
                      RuntimeWarning, stacklevel=2)
        return None
    if ext is not None:
        ext.conv_cap_isa(ISAS.index(name))
    return name


_isa_cap = _initial_isa_cap()


def isa_cap():
    """The instruction set ``FASTCONV_ISA`` caps the kernels at, or None."""
    return _isa_cap


def available_backends():
    """The backends that can run here.

    Returns
    -------
    tuple of str
        ``("c", "numpy")``, or ``("numpy",)`` without the compiled extension.
    """
    return BACKENDS if ext is not None else ("numpy",)


def set_backend(name):
    """Select the backend for every op in this process: ``"c"`` or ``"numpy"``.

    Parameters
    ----------
    name : str
        ``"c"`` (the compiled kernels) or ``"numpy"`` (the reference backend).

    Raises
    ------
    ValueError
        For an unknown name.
    RuntimeError
        When ``"c"`` is asked for but the compiled extension failed to import.
    """
    global _backend
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    name = name.lower()
    if name == "c" and ext is None:
        raise RuntimeError(f"the C backend is unavailable: {_EXT_ERROR}")
    _backend = name


def get_backend():
    """The name of the active backend.

    Returns
    -------
    str
        ``"c"`` or ``"numpy"``.
    """
    return _backend


@contextlib.contextmanager
def use_backend(name):
    """Context manager that selects a backend and restores the previous one.

    Parameters
    ----------
    name : str
        ``"c"`` or ``"numpy"``, as for :func:`set_backend`.

    Yields
    ------
    None
        The block runs on the chosen backend.
    """
    previous = _backend
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def use_c():
    """True when the next op runs the compiled kernels."""
    return _backend == "c"


# --- threads -----------------------------------------------------------------

_num_threads = None      # None: follow OpenMP (OMP_NUM_THREADS, threadpoolctl)
_forked = False          # are we a fork()ed child that has not chosen a count?
_fork_unsafe = False     # a fork()ed child: may libgomp's pool be gone here?


def _after_fork_in_child():
    # libgomp's worker pool does not survive fork(), and a child that opens a
    # parallel region after anyone in the parent (fastconv, torch, any library
    # sharing libgomp) used one waits forever, with no way back. We cannot see
    # what other libraries did, so every forked child (and its own children)
    # runs single-threaded for good.
    global _forked, _num_threads, _fork_unsafe
    _forked, _num_threads, _fork_unsafe = True, None, True
    _reset_blas_state_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def fork_limits_threads():
    """Whether this process was started by ``fork()`` (or descends from one by fork).

    There libgomp (the OpenMP runtime of GCC builds) would wait forever for
    the parent's worker threads, which the fork did not copy, so fastconv's
    kernels run on one thread and :func:`set_num_threads` keeps them there.
    Processes started with multiprocessing's ``spawn`` or ``forkserver``
    methods have no such limit.

    Returns
    -------
    bool
        True in such a child.
    """
    return _fork_unsafe


def openmp_enabled():
    """Whether the compiled extension is present and was built with OpenMP.

    Returns
    -------
    bool
        True when the kernels can run on several threads.
    """
    return ext is not None and ext.openmp_enabled()


def max_threads_allowed():
    """The largest count :func:`set_num_threads` accepts: OpenMP's thread limit,
    and at most 16 threads per CPU (beyond that libgomp may fail to create
    them and end the process)."""
    cpus = os.cpu_count() or 1
    limit = ext.thread_limit() if openmp_enabled() else 1 << 30
    return max(1, min(limit, 16 * cpus))


def set_num_threads(n):
    """Fix the number of threads fastconv's kernels use, for the whole process.

    Results never depend on it. In a child made by ``fork()`` the default is
    1 thread and stays so (:func:`fork_limits_threads`): more would hang in
    libgomp if anyone in the parent had run a parallel region, so a request
    for more warns (RuntimeWarning) and leaves the count at 1.

    Parameters
    ----------
    n : int or None
        A positive int up to :func:`max_threads_allowed`, or None to go back to
        the default, which reads ``omp_get_max_threads()`` at every call and so
        honours ``OMP_NUM_THREADS`` and ``threadpoolctl.threadpool_limits``.
    """
    global _num_threads, _forked
    if n is not None:
        try:
            if isinstance(n, bool):
                raise TypeError
            n = operator.index(n)
        except TypeError:
            raise TypeError(f"n must be a positive int or None, got {n!r}") from None
        if n < 1:
            raise ValueError(f"n must be a positive int or None, got {n!r}")
        limit = max_threads_allowed()
        if n > limit:
            raise ValueError(f"n must be at most {limit} (OpenMP's thread limit, and 16 "
                             f"per CPU), got {n}")
        if n > 1 and _fork_unsafe:
            warnings.warn(
                f"fastconv stays at 1 thread (asked for {n}): this process was started by "
                f"fork(), and OpenMP (libgomp) waits forever here for worker threads that a "
                f"parallel region in the parent left behind and fork did not copy. Start "
                f"workers with multiprocessing's 'spawn' or 'forkserver' method to use "
                f"several threads in each.",
                RuntimeWarning, stacklevel=2)
            n = 1
        _forked = False
    _num_threads = n


def get_num_threads():
    """The number of threads the next kernel call may use.

    Returns
    -------
    int
        The count set by :func:`set_num_threads`, else OpenMP's current one.
    """
    if not openmp_enabled():
        return 1
    if _num_threads is not None:
        return _num_threads
    if _forked or _fork_unsafe:
        return 1
    return max(1, ext.max_threads())


@contextlib.contextmanager
def use_num_threads(n):
    """Context manager: :func:`set_num_threads` ``(n)`` inside, the previous setting restored after.

    Parameters
    ----------
    n : int or None
        As for :func:`set_num_threads`.

    Yields
    ------
    None
        The block runs with that setting; the previous one (an explicit count,
        or None) is restored after.
    """
    previous = _num_threads
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)


# Below this many output elements a second thread costs more to wake than it
# saves; on a loaded machine the wake-up can take a whole scheduler tick.
# A context variable, so that a test forcing every call to split (fastconv's
# _testing module) changes only its own thread's calls.
grain = contextvars.ContextVar("fastconv_grain", default=1 << 15)


def threads_for(work):
    """Threads for a kernel call producing ``work`` output elements."""
    return min(get_num_threads(), max(1, work // grain.get()))


# --- numpy's BLAS pool ----------------------------------------------------------
#
# An OpenBLAS worker woken for a product spins for 2**28 cycles (about 0.1 s)
# before it sleeps, unless OPENBLAS_THREAD_TIMEOUT was set when numpy loaded
# it, which fastconv cannot do once numpy was imported first. A training step
# that makes even one multi-threaded product keeps a worker spinning all the
# time, taking a core from the OpenMP kernels (DeepConvNet's step: 1.44x
# slower, benchmarks/README.md). Small products therefore run on one BLAS
# thread, which never wakes the workers, whatever the import order.

_blas_lock = threading.Lock()
_blas_holders = 0
_blas_restore = []       # (library controller, its thread count) to restore
_blas_libraries = None   # threadpoolctl's controllers of the loaded BLAS


def _blas_controllers():
    global _blas_libraries
    if _blas_libraries is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas_libraries = [lib for lib in ThreadpoolController().lib_controllers
                               if lib.user_api == "blas"]
        except Exception:  # noqa: BLE001  (no control: products keep BLAS's own threads)
            _blas_libraries = []
    return _blas_libraries


def _reset_blas_state_after_fork():
    # Another thread of the parent may have held the lock, or been inside a
    # block, when it forked: the child gets a fresh lock and BLAS's own count.
    global _blas_lock, _blas_holders
    _blas_lock, _blas_holders = threading.Lock(), 0
    while _blas_restore:
        lib, before = _blas_restore.pop()
        try:
            lib.set_num_threads(before)
        except Exception:  # noqa: BLE001  (the child keeps one thread: slower, never wrong)
            pass


@contextlib.contextmanager
def blas_single_thread():
    """Inside the block numpy's BLAS runs on one thread (process-wide: a
    product another Python thread makes meanwhile runs on one thread too).
    Re-entrant and safe from several threads: the first to enter sets the
    count, the last to leave restores what it was."""
    global _blas_holders
    with _blas_lock:
        if _blas_holders == 0:
            for lib in _blas_controllers():
                before = lib.get_num_threads()
                if before != 1:
                    lib.set_num_threads(1)
                    _blas_restore.append((lib, before))
        _blas_holders += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_holders -= 1
            if _blas_holders == 0:
                while _blas_restore:
                    lib, before = _blas_restore.pop()
                    lib.set_num_threads(before)


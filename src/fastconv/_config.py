"""What this installation of fastconv runs on: how its compiled kernels were
built, the OpenMP runtime they use, the instruction set the direct convolution
chose on this CPU, and NumPy's BLAS. ``show_config()`` prints it (include it in
bug reports); ``build_config()`` returns the same as a dict.
"""
import platform
import sys
import warnings

from . import _runtime

try:
    from . import _ext  # read-only introspection; every kernel call goes through functional
except ImportError:
    _ext = None

__all__ = ["build_config", "show_config"]

if _ext is not None and not _ext.openmp_enabled():
    # A source build whose compiler had no OpenMP: pip hides CMake's warning,
    # so say it where the user sees it.
    warnings.warn("fastconv's kernels were built without OpenMP and run on one thread; "
                  "rebuild with an OpenMP-capable compiler (see fastconv.show_config())",
                  RuntimeWarning, stacklevel=2)


def _loaded_libraries(user_api):
    """threadpoolctl's view of the loaded libraries of one kind ("openmp", "blas")."""
    from threadpoolctl import threadpool_info

    keys = ("internal_api", "prefix", "version", "architecture", "threading_layer",
            "num_threads", "filepath")
    return [{k: info[k] for k in keys if k in info}
            for info in threadpool_info() if info.get("user_api") == user_api]


def build_config():
    """This installation's configuration as a dict of plain values.

    Returns
    -------
    dict
        Keys: ``version``, ``python``, ``machine``, ``extension`` (path of the
        compiled module, or None when fastconv runs on NumPy only), ``compiler``
        and ``target`` of that build, ``openmp`` (compiled with OpenMP),
        ``openmp_spec`` (the ``_OPENMP`` date, 0 without), ``openmp_libs`` (what
        the build linked), ``openmp_runtime`` and ``blas`` (loaded libraries as
        threadpoolctl reports them: prefix, version, filepath, ...),
        ``direct_conv`` (the direct convolution is compiled in), ``isa`` (its
        instruction set chosen on this CPU: "avx2", "baseline" or "none"),
        ``isa_cap`` (the ``FASTCONV_ISA`` setting, or None), ``threads``
        (``get_num_threads()``) and ``backend``.
    """
    from . import __version__

    cfg = {
        "version": __version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "machine": f"{sys.platform} {platform.machine()}",
        "extension": None, "compiler": None, "target": None,
        "openmp": False, "openmp_spec": 0, "openmp_libs": [],
        "direct_conv": False, "isa": "none", "isa_cap": _runtime.isa_cap(),
    }
    if _ext is not None:
        cfg.update(_ext.build_info())
        cfg.update(extension=_ext.__file__, openmp=bool(_ext.openmp_enabled()),
                   direct_conv=bool(_ext.conv_available()), isa=_ext.conv_isa())
    cfg["openmp_runtime"] = _loaded_libraries("openmp")
    cfg["blas"] = _loaded_libraries("blas")
    cfg["threads"] = _runtime.get_num_threads()
    cfg["backend"] = _runtime.get_backend()
    return cfg


def _describe(libs, name_key):
    if not libs:
        return "none loaded"
    parts = []
    for lib in libs:
        extra = ", ".join(str(lib[k]) for k in ("architecture", "threading_layer") if lib.get(k))
        text = f"{lib.get(name_key, '?')} {lib.get('version') or '(version unknown)'}"
        parts.append(f"{text}{f' ({extra})' if extra else ''} at {lib.get('filepath')}")
    return "; ".join(parts)


def show_config(file=None):
    """Print :func:`build_config` as indented ``key: value`` lines.

    Parameters
    ----------
    file : file-like, optional
        Where to write; default ``sys.stdout``.
    """
    cfg = build_config()
    if cfg["extension"] is None:
        openmp = "n/a (no compiled extension: NumPy backend only)"
    elif cfg["openmp"]:
        libs = ",".join(cfg["openmp_libs"]) or "?"
        openmp = f"enabled (OpenMP {cfg['openmp_spec']}, linked {libs})"
    else:
        openmp = "DISABLED: kernels run on one thread"
    rows = [
        ("fastconv", cfg["version"]),
        ("python", f"{cfg['python']} on {cfg['machine']}"),
        ("extension", cfg["extension"] or "not importable"),
        ("compiler", f"{cfg['compiler']} for {cfg['target']}" if cfg["compiler"] else "n/a"),
        ("openmp", openmp),
        ("openmp runtime", _describe(cfg["openmp_runtime"], "prefix")),
        ("direct conv ISA", (cfg["isa"] + (f" (FASTCONV_ISA={cfg['isa_cap']})"
                                           if cfg.get("isa_cap") else ""))
         if cfg["direct_conv"] else "none (not compiled in)"),
        ("blocked ISA", _ext.blocked_isa_name(_ext.blocked_isa())
         if _ext is not None and _ext.blocked_available() else "none (not compiled in)"),
        ("threads", cfg["threads"]),
        ("backend", cfg["backend"]),
        ("numpy BLAS", _describe(cfg["blas"], "internal_api")),
    ]
    out = sys.stdout if file is None else file
    for key, value in rows:
        print(f"  {key + ':':17}{value}", file=out)

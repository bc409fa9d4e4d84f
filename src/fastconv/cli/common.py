"""What the commands share: errors, the parser, option groups, and the steps
every command takes (threads, data, a saved network, output folders)."""
import argparse
import contextlib
import json
import os
import tempfile

import numpy as np

from ..io.checkpoint import atomic_write
from ..nn import MODEL_NAMES, Net, make_model
from .._argtypes import thread_count

__all__ = ["CliError", "UsageError", "Parser", "MODELS", "add_common", "add_model",
           "configure", "load_data", "load_network", "reason", "output_folder", "write_json",
           "save_pictures_of_filters"]

MODELS = MODEL_NAMES

# threadpoolctl limits kept for the life of the process (the command ends when
# its work does): see configure.
_BLAS_LIMITS = []


class CliError(Exception):
    """An error the user can fix: printed as one line, exit status 1."""

    status = 1


class UsageError(CliError):
    """A bad option value found after parsing: one line, exit status 2, as argparse's."""

    status = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``--help`` still shows the usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_common(p):
    p.add_argument("--data", metavar="DIR",
                   help="folder of the MNIST IDX files (default: $FASTCONV_DATA, else the "
                        "user cache folder, downloading when missing)")
    p.add_argument("--no-download", action="store_true",
                   help="fail instead of downloading when the data folder lacks MNIST")
    p.add_argument("--backend", choices=["c", "numpy"], default=None,
                   help="kernel backend (default: c, or $FASTCONV_BACKEND)")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="kernel threads, at most OpenMP's thread limit and 16 per CPU "
                        "(default: all cores, or $OMP_NUM_THREADS)")


def add_model(p, *, card=True):
    """--model and --dtype; ``card``: the command reads a model card beside --params."""
    beside = "the model.json beside --params, else " if card else ""
    p.add_argument("--model", choices=MODELS, default=None,
                   help=f"network (default: {beside}simple)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help=f"float32 or float64 (default: {beside}float32)")


def configure(args):
    """Apply --backend and --threads. --threads bounds every compute thread of
    the process, the kernels' OpenMP team and numpy's BLAS pool alike (as
    torch.set_num_threads does): two pools that each take every core fight
    over them, and on a loaded machine that cost 5x (benchmarks/README.md)."""
    from .. import functional as F
    if args.backend:
        try:
            F.set_backend(args.backend)
        except RuntimeError as exc:
            raise CliError(str(exc)) from None
    if args.threads:
        F.set_num_threads(args.threads)
        from threadpoolctl import threadpool_limits
        _BLAS_LIMITS.append(threadpool_limits(limits=args.threads, user_api="blas"))


def load_data(args, limit=None):
    from ..io.mnist import load_mnist
    (x_train, t_train), (x_test, t_test) = load_mnist(
        normalize=True, flatten=False, data_dir=args.data,
        download=not args.no_download, progress=True)
    if limit:
        x_train, t_train = x_train[:limit], t_train[:limit]
        x_test, t_test = x_test[:limit], t_test[:limit]
    dtype = np.dtype(args.dtype or "float32")
    return (x_train.astype(dtype, copy=False), t_train), (x_test.astype(dtype, copy=False), t_test)


def load_network(args):
    path = args.params
    if not os.path.isfile(path):
        raise CliError(f"parameter file not found: {path}")
    from ..nn import card as modelcard
    sidecar = os.path.join(os.path.dirname(os.path.abspath(path)), modelcard.FILE_NAME)
    meta = {}
    if os.path.isfile(sidecar):
        try:
            meta = modelcard.read_card(sidecar)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    # An explicit option wins over model.json, which wins over the defaults.
    model = args.model or meta.get("model") or "simple"
    dtype = args.dtype or meta.get("dtype") or "float32"
    if args.model is None and "layer_specs" in meta:
        # A full card: the architecture is in the file, whatever the model's name.
        model = str(model)
        try:
            network = Net.from_card(meta, np.dtype(dtype))
        except ValueError as exc:
            raise CliError(f"{sidecar}: {exc}") from None
    else:
        if model not in MODELS or dtype not in ("float32", "float64"):
            raise CliError(f"{sidecar} names an unknown model {model!r} or dtype {dtype!r}")
        network = make_model(model, np.dtype(dtype))
    try:
        network.load_params(path)
    except (ValueError, OSError, KeyError) as exc:
        raise CliError(f"cannot load {path} into the {model} model: {exc}") from None
    return network, model


def reason(exc):
    """What went wrong, without the file name (the message names it already)."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _remove_empty(folders):
    """Remove the folders this run created, deepest first, if they are still empty."""
    for folder in reversed(folders):
        try:
            os.rmdir(folder)
        except OSError:
            return


def _prepare_out(path, option="--out"):
    """Create the folder ``path`` if missing and prove that a file can be made in it;
    return the folders created, for :func:`_remove_empty`."""
    missing, parent = [], os.path.abspath(path)
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    created = []
    try:
        for folder in reversed(missing):
            os.mkdir(folder)
            created.append(folder)
        if not os.path.isdir(path):
            raise CliError(f"{option} {path} is not a folder")
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        _remove_empty(created)
        verb = "create" if missing and len(created) < len(missing) else "write in"
        raise CliError(f"cannot {verb} {option} folder {path}: {reason(exc)}") from None
    except CliError:
        _remove_empty(created)
        raise
    return created


@contextlib.contextmanager
def output_folder(path, option="--out"):
    """The folder ``path``, ready for writing; removed again if the command fails
    and left it empty."""
    created = _prepare_out(path, option)
    try:
        yield path
    except BaseException:
        _remove_empty(created)
        raise


def conv1_maps(network, image):
    """conv1 then ReLU of one (1, H, W) image: the maps the network sees first."""
    conv = network.layers["Conv1"]
    maps = conv.forward(image[None].astype(network.dtype, copy=False))
    return np.maximum(maps[0], 0)


def save_pictures_of_filters(network, x_test, out, before=None, index=0):
    from . import plots as viz
    written = []
    if before is not None:
        viz.plot_filters_before_after(before, network.params["W1"],
                                      os.path.join(out, "filters.png"))
    else:
        viz.plot_filters(network.params["W1"], os.path.join(out, "filters.png"))
    written.append("filters.png")
    image = x_test[index]
    viz.plot_feature_maps(image[0], conv1_maps(network, image),
                          os.path.join(out, "feature_maps.png"),
                          title=f"conv1 + ReLU feature maps of test image {index}")
    written.append("feature_maps.png")
    return written


def write_json(path, obj):
    """``obj`` as indented JSON at ``path``, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)

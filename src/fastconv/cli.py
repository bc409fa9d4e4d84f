"""The ``fastconv`` command line: ``train``, ``eval``, ``viz``, ``predict``, ``export``,
``bench`` and ``convert``.

One handler in :func:`main` turns every failure a user can cause into one line
on stderr, never a traceback: a usage error (a bad option or option value)
exits with status 2, any other error (a missing or damaged file, an output
folder that cannot be written, fastconv's own ValueError or TypeError, an
OSError) with status 1. Output folders are checked before any work starts,
and a command that fails leaves no empty output folder behind. Every file is
written atomically (a failed write keeps the previous file); if the trained
parameters still cannot be saved, they go to the temporary folder and the
error says where. Ctrl-C during training saves a checkpoint first (exit
status 130).
"""
import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import numpy as np

from ._cli_types import (int_in_range, non_negative_int, positive_float, positive_int,
                         thread_count)
from .io.checkpoint import CheckpointError, atomic_path, atomic_write
from .models import MODEL_NAMES, Net, make_model

__all__ = ["main", "build_parser", "MODELS"]

MODELS = MODEL_NAMES

# Training recipes for `fastconv train --preset`; an option given on the
# command line wins over its preset's value. "fast" was chosen by runs on the
# real MNIST files (benchmarks/README.md, "The fast preset").
PRESETS = {
    "book": {"epochs": 20, "batch_size": 100, "optimizer": "adam", "lr": 0.001,
             "augment": 0, "init": "book", "lr_schedule": "constant"},
    "fast": {"epochs": 3, "batch_size": 100, "optimizer": "adam", "lr": 0.003,
             "augment": 1, "init": "he", "lr_schedule": "cosine-steps"},
}
# A 28-pixel digit shifted any further is gone from the picture.
_MAX_SHIFT = 27


class CliError(Exception):
    """An error the user can fix: printed as one line, exit status 1."""

    status = 1


class UsageError(CliError):
    """A bad option value found after parsing: one line, exit status 2, as argparse's."""

    status = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``--help`` still shows the usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_common(p):
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


def _add_model(p, *, card=True):
    """--model and --dtype; ``card``: the command reads a model card beside --params."""
    beside = "the model.json beside --params, else " if card else ""
    p.add_argument("--model", choices=MODELS, default=None,
                   help=f"network (default: {beside}simple)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help=f"float32 or float64 (default: {beside}float32)")


def build_parser():
    parser = _Parser(
        prog="fastconv",
        description="Train and inspect the CNNs of 'Deep Learning from Scratch' on MNIST, "
                    "on C/OpenMP kernels.")
    sub = parser.add_subparsers(dest="command",
                                metavar="{train,eval,viz,predict,export,bench,convert}",
                                required=True)

    p = sub.add_parser("train", help="train a network on MNIST (default: the book's "
                                     "SimpleConvNet recipe)")
    _add_model(p, card=False)
    p.add_argument("--preset", choices=sorted(PRESETS), default="book",
                   help="a training recipe: 'book' (the book's: 20 epochs of Adam at lr "
                        "0.001, no augmentation) or 'fast' (3 epochs, He weights, Adam at lr "
                        "0.003 decayed to 0 by a cosine before every update, images shifted "
                        "by up to 1 pixel; see README for its accuracy and time); the "
                        "options below override its values")
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--optimizer", default=None,
                   choices=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
    p.add_argument("--lr", type=positive_float, default=None)
    p.add_argument("--augment", type=int_in_range(0, _MAX_SHIFT), default=None, metavar="PX",
                   help=f"shift each training image by up to PX pixels at random, at most "
                        f"{_MAX_SHIFT} (the book's recipe: 0)")
    p.add_argument("--init", choices=["book", "he"], default=None,
                   help="initial weights: the book's (SimpleConvNet: normal with std 0.01; "
                        "DeepConvNet: He) or He's sqrt(2/fan_in) for every model")
    p.add_argument("--lr-schedule", choices=["constant", "cosine", "cosine-steps"],
                   default=None,
                   help="constant (the book's), or cosine decay of the learning rate to zero "
                        "over the run, set once per epoch ('cosine') or before every update "
                        "('cosine-steps')")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed of the initial weights and the shuffling (default 0)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="train on the first N training images and test on the first N test "
                        "images, for a quick try")
    p.add_argument("--out", metavar="DIR", default="runs/train",
                   help="output folder for params.npz, history.json and the PNGs")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    _add_common(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("eval", help="test accuracy, confusion matrix and misclassified digits")
    p.add_argument("--params", required=True, metavar="FILE", help="a params.npz from train")
    _add_model(p)
    p.add_argument("--out", metavar="DIR", help="also write confusion_matrix.png and "
                                                "misclassified.png here")
    _add_common(p)
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser("viz", help="draw the conv1 filters and feature maps of saved params")
    p.add_argument("--params", required=True, metavar="FILE", help="a params.npz from train")
    _add_model(p)
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: the folder of --params)")
    p.add_argument("--index", type=int, default=0, help="test image for the feature maps")
    _add_common(p)
    p.set_defaults(run=cmd_viz)

    p = sub.add_parser("predict", help="classify your own pictures of digits (PNG, JPEG, BMP)")
    p.add_argument("--params", required=True, metavar="FILE", help="a params.npz from train")
    _add_model(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="pictures of one digit each")
    p.add_argument("--top", type=positive_int, default=3, help="classes shown per picture")
    p.add_argument("--json", action="store_true",
                   help='print a JSON list of {"path": ..., "top": [[class, probability], ...]}')
    p.add_argument("--show", metavar="OUT.png",
                   help="also draw each preprocessed input beside its probabilities")
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser("export", help="write saved params as an ONNX model (needs onnx)")
    p.add_argument("--params", required=True, metavar="FILE", help="a params.npz from train")
    _add_model(p)
    p.add_argument("--onnx", required=True, metavar="OUT", help="the .onnx file to write")
    p.add_argument("--batch", type=positive_int, default=None,
                   help="fix the batch dimension (default: any batch size)")
    p.set_defaults(run=cmd_export)

    from . import bench
    p = sub.add_parser("bench", help="time the C kernels against NumPy and PyTorch")
    bench.add_arguments(p)
    p.set_defaults(run=cmd_bench)

    p = sub.add_parser("convert", help="turn the book's pickled parameters into a .npz, "
                                       "safely (nothing in the pickle is run)")
    p.add_argument("--model", choices=("simple", "deep"), default="simple",
                   help="the book's SimpleConvNet (ch07 params.pkl) or DeepConvNet "
                        "(ch08 deep_convnet_params.pkl)")
    p.add_argument("pickle", metavar="BOOK.pkl")
    p.add_argument("out", metavar="OUT.npz")
    p.set_defaults(run=cmd_convert)
    return parser


# --- shared steps ---------------------------------------------------------------

def _configure(args):
    """Apply --backend and --threads. --threads bounds every compute thread of
    the process, the kernels' OpenMP team and numpy's BLAS pool alike (as
    torch.set_num_threads does): two pools that each take every core fight
    over them, and on a loaded machine that cost 5x (benchmarks/README.md)."""
    from . import functional as F
    if args.backend:
        try:
            F.set_backend(args.backend)
        except RuntimeError as exc:
            raise CliError(str(exc)) from None
    if args.threads:
        F.set_num_threads(args.threads)
        from threadpoolctl import threadpool_limits
        # Kept for the life of the process: the command ends when training does.
        args._blas_limit = threadpool_limits(limits=args.threads, user_api="blas")


def _load_data(args, limit=None):
    from .datasets import load_mnist
    (x_train, t_train), (x_test, t_test) = load_mnist(
        normalize=True, flatten=False, data_dir=args.data,
        download=not args.no_download, progress=True)
    if limit:
        x_train, t_train = x_train[:limit], t_train[:limit]
        x_test, t_test = x_test[:limit], t_test[:limit]
    dtype = np.dtype(args.dtype or "float32")
    return (x_train.astype(dtype, copy=False), t_train), (x_test.astype(dtype, copy=False), t_test)


def _load_network(args):
    path = args.params
    if not os.path.isfile(path):
        raise CliError(f"parameter file not found: {path}")
    from .nn import card as modelcard
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
    args.dtype = dtype
    try:
        network.load_params(path)
    except (ValueError, OSError, KeyError) as exc:
        raise CliError(f"cannot load {path} into the {model} model: {exc}") from None
    return network, model


def _reason(exc):
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
        raise CliError(f"cannot {verb} {option} folder {path}: {_reason(exc)}") from None
    except CliError:
        _remove_empty(created)
        raise
    return created


@contextlib.contextmanager
def _output_folder(path, option="--out"):
    """The folder ``path``, ready for writing; removed again if the command fails
    and left it empty."""
    created = _prepare_out(path, option)
    try:
        yield path
    except BaseException:
        _remove_empty(created)
        raise


def _conv1_maps(network, image):
    """conv1 then ReLU of one (1, H, W) image: the maps the network sees first."""
    conv = network.layers["Conv1"]
    maps = conv.forward(image[None].astype(network.dtype, copy=False))
    return np.maximum(maps[0], 0)


def _save_pictures_of_filters(network, x_test, out, before=None, index=0):
    from . import viz
    written = []
    if before is not None:
        viz.plot_filters_before_after(before, network.params["W1"],
                                      os.path.join(out, "filters.png"))
    else:
        viz.plot_filters(network.params["W1"], os.path.join(out, "filters.png"))
    written.append("filters.png")
    image = x_test[index]
    viz.plot_feature_maps(image[0], _conv1_maps(network, image),
                          os.path.join(out, "feature_maps.png"),
                          title=f"conv1 + ReLU feature maps of test image {index}")
    written.append("feature_maps.png")
    return written


# --- commands -------------------------------------------------------------------

def cmd_train(args):
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    _configure(args)
    args.model = args.model or "simple"
    args.dtype = args.dtype or "float32"
    # Checked first, so that no training (or download) is wasted on a folder
    # that cannot take the results; removed again if the run fails early.
    with _output_folder(args.out):
        train, test = _load_data(args, args.limit)
        network = make_model(args.model, np.dtype(args.dtype), args.seed, args.init)
        return _train(args, network, train, test)


def _train(args, network, train, test):
    from tqdm.auto import tqdm

    from . import functional as F
    from .optim import cosine_lr
    from .trainer import Trainer

    (x_train, t_train), (x_test, t_test) = train, test
    w1_before = network.params["W1"].copy()
    def say(msg):
        if not args.quiet:
            tqdm.write(msg)
            sys.stdout.flush()  # epoch lines must show up when stdout is a pipe

    say(f"training {type(network).__name__} (preset {getattr(args, 'preset', None)}) "
        f"on {len(x_train)} images "
        f"({len(x_test)} test), {args.epochs} epochs, batch {args.batch_size}, "
        f"{args.optimizer} lr {args.lr} ({args.lr_schedule}), init {args.init}, "
        f"augment {args.augment} px, "
        f"{args.dtype}, backend {F.get_backend()}, "
        f"{F.get_num_threads()} threads, seed {args.seed}")

    augment = None
    if args.augment:
        from .augment import random_shift
        augment = lambda x, rng: random_shift(x, args.augment, rng)  # noqa: E731
    bar = None
    iters = -(-len(x_train) // args.batch_size)

    def on_iteration(trainer, iteration, loss):
        nonlocal bar
        if args.lr_schedule == "cosine-steps":  # the rate for the next update
            trainer.optimizer.lr = cosine_lr(args.lr, min(iteration, trainer.max_iter),
                                             max(trainer.max_iter, 1))
        if args.quiet:
            return
        if bar is None:
            bar = tqdm(total=iters, desc=f"epoch {trainer.current_epoch + 1}/{args.epochs}",
                       unit="batch", leave=False, dynamic_ncols=True)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def on_epoch(trainer, epoch, record):
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None
        record["lr"] = trainer.optimizer.lr
        if args.lr_schedule == "cosine":
            trainer.optimizer.lr = cosine_lr(args.lr, epoch, args.epochs)  # for the next epoch
        say(f"epoch {epoch:>2}/{args.epochs}  loss {record['loss']:.4f}  "
            f"train acc {record['train_acc']:.4f}  test acc {record['test_acc']:.4f}  "
            f"{record['seconds']:.1f} s")

    trainer = Trainer(network, x_train, t_train, x_test, t_test, epochs=args.epochs,
                      mini_batch_size=args.batch_size, optimizer=args.optimizer,
                      optimizer_param={"lr": args.lr}, verbose=False, seed=args.seed,
                      on_iteration=on_iteration, on_epoch=on_epoch,
                      train_eval_samples=min(len(x_train), 10000),
                      batch_transform=augment)
    start = time.perf_counter()
    interrupted = False
    try:
        trainer.train()
    except KeyboardInterrupt:
        interrupted = True
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - start

    params_path = os.path.join(args.out, "params.npz")
    _save_params(network, params_path, args)
    from .nn.card import card
    _write_json(os.path.join(args.out, "model.json"), card(network, model=args.model))
    summary = {
        "model": args.model, "preset": getattr(args, "preset", None), "epochs": args.epochs,
        "completed_epochs": trainer.current_epoch,
        "batch_size": args.batch_size, "optimizer": args.optimizer, "lr": args.lr,
        "lr_schedule": args.lr_schedule, "augment": args.augment, "init": args.init,
        "dtype": args.dtype, "backend": F.get_backend(), "threads": F.get_num_threads(),
        "seed": args.seed, "train_size": len(x_train), "test_size": len(x_test),
        "interrupted": interrupted, "wall_seconds": wall, "history": trainer.history,
        "iteration_losses": trainer.train_loss_list,
    }
    if interrupted:
        summary["final_test_acc"] = None
        _write_json(os.path.join(args.out, "history.json"), summary)
        print(f"interrupted after {trainer.current_epoch} epochs and {trainer.current_iter} "
              f"updates; checkpoint saved to {params_path}", file=sys.stderr)
        return 130

    final = float(network.accuracy(x_test, t_test))
    summary["final_test_acc"] = final
    _write_json(os.path.join(args.out, "history.json"), summary)
    from . import viz
    viz.plot_learning_curves(trainer.history, os.path.join(args.out, "learning_curves.png"),
                             trainer.train_loss_list)
    pictures = _save_pictures_of_filters(network, x_test, args.out, before=w1_before)
    print(f"final test accuracy {final:.4f} on {len(x_test)} images; "
          f"{wall:.1f} s for {args.epochs} epochs")
    if not args.quiet:
        print(f"wrote {params_path}, history.json, learning_curves.png, "
              f"{', '.join(pictures)} in {args.out}")
    return 0


def _save_params(network, path, args):
    """Save the trained parameters to ``path``; if that fails, to a new file in the
    temporary folder, and raise CliError saying where they are."""
    try:
        network.save_params(path)
        return
    except (OSError, CheckpointError) as exc:
        failure = exc
    try:
        fd, fallback = tempfile.mkstemp(prefix=f"fastconv-{args.model}-params-", suffix=".npz")
        os.close(fd)
        try:
            network.save_params(fallback)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(fallback)
            raise
    except OSError as exc:
        raise CliError(f"cannot write {path} ({_reason(failure)}), nor a copy in "
                       f"{tempfile.gettempdir()} ({_reason(exc)}): the trained parameters "
                       f"are lost") from None
    raise CliError(f"cannot write {path} ({_reason(failure)}); the trained parameters are "
                   f"saved in {fallback} instead (load them with --params {fallback} "
                   f"--model {args.model} --dtype {args.dtype})")


def _write_json(path, obj):
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


def cmd_eval(args):
    _configure(args)
    network, model = _load_network(args)
    with contextlib.ExitStack() as stack:
        if args.out:
            stack.enter_context(_output_folder(args.out))
        _, (x_test, t_test) = _load_data(args)
        return _evaluate(args, network, model, x_test, t_test)


def _evaluate(args, network, model, x_test, t_test):
    from . import viz

    scores = np.concatenate([network.predict(x_test[i:i + 500])
                             for i in range(0, len(x_test), 500)])
    y = scores.argmax(axis=1)
    cm = viz.confusion_matrix(t_test, y)
    acc = float(np.mean(y == t_test))
    print(f"{model}: test accuracy {acc:.4f} ({int(np.sum(y == t_test))}/{len(t_test)})")
    print(viz.format_confusion_matrix(cm))
    if args.out:
        viz.plot_confusion_matrix(cm, os.path.join(args.out, "confusion_matrix.png"))
        n = viz.plot_misclassified(x_test, t_test, y, os.path.join(args.out, "misclassified.png"))
        if n:
            print(f"wrote confusion_matrix.png and misclassified.png ({n} shown) in {args.out}")
        else:
            print(f"wrote confusion_matrix.png in {args.out} (no misclassified images to draw)")
    return 0


def cmd_viz(args):
    _configure(args)
    network, _ = _load_network(args)
    _, (x_test, _) = _load_data(args)
    if not 0 <= args.index < len(x_test):
        raise UsageError(f"argument --index: must be in [0, {len(x_test)}), "
                         f"got {args.index}")
    out = args.out or os.path.dirname(os.path.abspath(args.params))
    with _output_folder(out):
        written = _save_pictures_of_filters(network, x_test, out, index=args.index)
    print(f"wrote {', '.join(written)} in {out}")
    return 0


def cmd_predict(args):
    from .io.pictures import images_to_inputs

    network, _ = _load_network(args)
    try:
        x = images_to_inputs(args.images, network.input_dim)
    except (ValueError, ImportError) as exc:  # ImageError names the file
        raise CliError(str(exc)) from None
    scores = network.predict(x).astype(np.float64)
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :args.top]
    rows = [{"path": path, "top": [[int(k), float(probs[i, k])] for k in top[i]]}
            for i, path in enumerate(args.images)]
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(f"{row['path']}: " + ", ".join(f"{k} {p:.3f}" for k, p in row["top"]))
    if args.show:
        from . import viz
        try:
            viz.plot_predictions(x[:, 0], probs, args.images, args.show)
        except OSError as exc:
            raise CliError(f"cannot write {args.show}: {exc}") from None
    return 0


def cmd_export(args):
    from .interop import onnx as export

    network, model = _load_network(args)
    try:
        export.to_onnx(network, args.onnx, batch=args.batch)
    except ImportError as exc:
        raise CliError(str(exc)) from None
    except (ValueError, OSError) as exc:
        raise CliError(f"cannot export {model} to {args.onnx}: {exc}") from None
    def dims(shape):
        return "(" + ", ".join(str(d) for d in (args.batch or "batch", *shape)) + ")"
    print(f"wrote {args.onnx}: input 'input' {dims(network.input_dim)} float32, "
          f"output 'logits' {dims(network.output_shape)} (scores before the softmax)")
    return 0


def cmd_bench(args):
    from . import bench

    if args.json is None:
        return bench.run(args)
    target = args.json
    with contextlib.ExitStack() as stack:
        # The JSON goes to a temporary file beside the target, made now (so an
        # unwritable target is refused before the benchmarks run) and renamed
        # over the target only when they are done.
        try:
            args.json = stack.enter_context(atomic_path(target))
        except OSError as exc:
            raise CliError(f"cannot write --json {target}: {_reason(exc)}") from None
        return bench.run(args)


def cmd_convert(args):
    from .book_params import BookParamsError
    # float64 keeps the book's values exactly; loading casts them to a float32 model.
    network = make_model(args.model, np.float64)
    try:
        network.load_book_params(args.pickle)
    except (BookParamsError, ValueError) as exc:
        raise CliError(f"cannot convert {args.pickle}: {exc}") from None
    try:
        network.save_params(args.out)
    except (OSError, CheckpointError) as exc:
        raise CliError(f"cannot write {args.out}: {_reason(exc)}") from None
    print(f"wrote {args.out} from {args.pickle} ({args.model} model; the book's dropout "
          f"scaling is folded into the weights). Evaluate it with: "
          f"fastconv eval --model {args.model} --params {args.out}")
    return 0


# What a user can cause, and fastconv reports as such: its own errors (ValueError and
# TypeError subclasses, as the library raises them) and the operating system's.
_USER_ERRORS = (CliError, ValueError, TypeError, OSError, MemoryError)


def _one_line(exc):
    text = " ".join(str(exc).split())
    if isinstance(exc, MemoryError):
        return f"out of memory{': ' + text if text else ''}"
    return text or type(exc).__name__


# What each command imports beyond the library; they come with fastconv[cli].
_EXTRAS = {"train": ("tqdm", "matplotlib"), "eval": ("matplotlib",), "viz": ("matplotlib",)}


def _missing_extras(command):
    missing = []
    for name in _EXTRAS.get(command, ()):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    return missing


def main(argv=None):
    """Run the command line; returns the exit status.

    0 on success, 1 for an error, 2 for a usage error (argparse's exit with
    SystemExit(2)), 130 after Ctrl-C. Errors are one line on stderr.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    missing = _missing_extras(args.command)
    if missing:
        print(f"fastconv {args.command}: error: needs {' and '.join(missing)}, which come with "
              "the cli extra: pip install 'fastconv[cli]'", file=sys.stderr)
        return 1
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _USER_ERRORS as exc:
        print(f"fastconv {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return getattr(exc, "status", 1)

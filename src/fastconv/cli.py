"""The ``fastconv`` command line: ``train``, ``eval``, ``viz`` and ``bench``.

Every failure a user can cause (a bad option, a missing file, a parameter
file of the wrong model) ends in one line on stderr and exit status 2, not a
traceback. Ctrl-C during training saves a checkpoint first (exit status 130).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

__all__ = ["main", "build_parser", "MODELS"]

MODELS = ("simple", "deep", "lenet", "alexnet")


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``--help`` still shows the usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(convert, accept, what):
    """An argparse type: ``convert(text)``, refused unless ``accept(value)``."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


_non_negative_int = _number(int, lambda v: v >= 0, "a non-negative integer")
_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_positive_float = _number(float, lambda v: v > 0 and np.isfinite(v), "a positive number")


def _add_common(p):
    p.add_argument("--data", metavar="DIR",
                   help="folder of the MNIST IDX files (default: $FASTCONV_DATA, else the "
                        "user cache folder, downloading when missing)")
    p.add_argument("--no-download", action="store_true",
                   help="fail instead of downloading when the data folder lacks MNIST")
    p.add_argument("--backend", choices=["c", "numpy"], default=None,
                   help="kernel backend (default: c, or $FASTCONV_BACKEND)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="kernel threads (default: all cores, or $OMP_NUM_THREADS)")


def _add_model(p, default="simple"):
    p.add_argument("--model", choices=MODELS, default=None,
                   help=f"network (default: the model.json beside --params, else {default})")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="float32 (default) or float64")


def build_parser():
    parser = _Parser(
        prog="fastconv",
        description="Train and inspect the CNNs of 'Deep Learning from Scratch' on MNIST, "
                    "on C/OpenMP kernels.")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,viz,bench}",
                                required=True)

    p = sub.add_parser("train", help="train a network on MNIST (default: the book's "
                                     "SimpleConvNet recipe)")
    _add_model(p)
    p.add_argument("--epochs", type=_positive_int, default=20)
    p.add_argument("--batch-size", type=_positive_int, default=100)
    p.add_argument("--optimizer", default="adam",
                   choices=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
    p.add_argument("--lr", type=_positive_float, default=0.001)
    p.add_argument("--augment", type=_non_negative_int, default=0, metavar="PX",
                   help="shift each training image by up to PX pixels at random (default 0: "
                        "the book's recipe)")
    p.add_argument("--init", choices=["book", "he"], default="book",
                   help="initial weights: the book's (SimpleConvNet: normal with std 0.01; "
                        "DeepConvNet: He) or He's sqrt(2/fan_in) for every model")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                   help="constant (the book's) or cosine decay of the learning rate to zero "
                        "over the epochs")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights and the shuffling (default 0)")
    p.add_argument("--limit", type=_positive_int, default=None,
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

    from . import bench
    p = sub.add_parser("bench", help="time the C kernels against NumPy and PyTorch")
    bench.add_arguments(p)
    p.set_defaults(run=bench.run)
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
    from .datasets import DatasetError, load_mnist
    try:
        (x_train, t_train), (x_test, t_test) = load_mnist(
            normalize=True, flatten=False, data_dir=args.data,
            download=not args.no_download, progress=True)
    except DatasetError as exc:
        # The library's message lists every mirror on its own line; a command
        # line error is one line.
        raise CliError(" ".join(str(exc).split())) from None
    if limit:
        x_train, t_train = x_train[:limit], t_train[:limit]
        x_test, t_test = x_test[:limit], t_test[:limit]
    dtype = np.dtype(args.dtype or "float32")
    return (x_train.astype(dtype, copy=False), t_train), (x_test.astype(dtype, copy=False), t_test)


def make_model(name, dtype=np.float32, seed=0, init="book"):
    """The network called ``name`` (one of MODELS) for 1x28x28 MNIST digits.

    ``init="he"`` gives SimpleConvNet He's initial weights instead of the
    book's std 0.01 (the other models use He's already).
    """
    from . import models
    if name == "simple":
        return models.SimpleConvNet(weight_init_std="he" if init == "he" else 0.01,
                                    dtype=dtype, seed=seed)
    if name == "deep":
        return models.DeepConvNet(dtype=dtype, seed=seed)
    if name == "lenet":
        return models.LeNet(input_dim=(1, 28, 28), dtype=dtype, seed=seed)
    if name == "alexnet":
        # The paper's widths and 11x11 stride-4 first layer are for 224x224
        # photos; a 28x28 digit gets a 3x3 first layer and narrower layers.
        return models.AlexNet((1, 28, 28), output_size=10, conv_channels=(32, 64, 96, 96, 64),
                              hidden_size=256, conv1_size=3, conv1_stride=1, conv1_pad=1,
                              dtype=dtype, seed=seed)
    raise CliError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


def _load_network(args):
    path = args.params
    if not os.path.isfile(path):
        raise CliError(f"parameter file not found: {path}")
    sidecar = os.path.join(os.path.dirname(os.path.abspath(path)), "model.json")
    meta = {}
    if os.path.isfile(sidecar):
        try:
            with open(sidecar) as f:
                meta = json.load(f)
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {sidecar}: {exc}") from None
        if not isinstance(meta, dict):
            raise CliError(f"cannot read {sidecar}: expected a JSON object, "
                           f"got {type(meta).__name__}")
    # An explicit option wins over model.json, which wins over the defaults.
    model = args.model or meta.get("model") or "simple"
    dtype = args.dtype or meta.get("dtype") or "float32"
    if model not in MODELS or dtype not in ("float32", "float64"):
        raise CliError(f"{sidecar} names an unknown model {model!r} or dtype {dtype!r}")
    args.dtype = dtype
    network = make_model(model, np.dtype(dtype))
    try:
        network.load_params(path)
    except (ValueError, OSError, KeyError) as exc:
        raise CliError(f"cannot load {path} into the {model} model: {exc}") from None
    return network, model


def _ensure_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create output folder {path}: {exc}") from None


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
    from tqdm.auto import tqdm

    from . import functional as F
    from .trainer import Trainer

    _configure(args)
    args.model = args.model or "simple"
    args.dtype = args.dtype or "float32"
    (x_train, t_train), (x_test, t_test) = _load_data(args, args.limit)
    _ensure_dir(args.out)  # only once the data is there: a failed run leaves nothing
    network = make_model(args.model, np.dtype(args.dtype), args.seed, args.init)
    w1_before = network.params["W1"].copy()
    def say(msg):
        if not args.quiet:
            tqdm.write(msg)
            sys.stdout.flush()  # epoch lines must show up when stdout is a pipe

    say(f"training {type(network).__name__} on {len(x_train)} images "
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
            # Set per epoch, for the next one: lr * (1 + cos(pi * done / total)) / 2.
            trainer.optimizer.lr = args.lr * 0.5 * (1 + math.cos(math.pi * epoch / args.epochs))
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
    network.save_params(params_path)
    with open(os.path.join(args.out, "model.json"), "w") as f:
        json.dump({"model": args.model, "dtype": args.dtype}, f)
    summary = {
        "model": args.model, "epochs": args.epochs, "completed_epochs": trainer.current_epoch,
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


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def cmd_eval(args):
    from . import viz

    _configure(args)
    network, model = _load_network(args)
    _, (x_test, t_test) = _load_data(args)
    scores = np.concatenate([network.predict(x_test[i:i + 500])
                             for i in range(0, len(x_test), 500)])
    y = scores.argmax(axis=1)
    cm = viz.confusion_matrix(t_test, y)
    acc = float(np.mean(y == t_test))
    print(f"{model}: test accuracy {acc:.4f} ({int(np.sum(y == t_test))}/{len(t_test)})")
    print(viz.format_confusion_matrix(cm))
    if args.out:
        _ensure_dir(args.out)
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
        raise CliError(f"--index must be in [0, {len(x_test)}), got {args.index}")
    out = args.out or os.path.dirname(os.path.abspath(args.params))
    _ensure_dir(out)
    written = _save_pictures_of_filters(network, x_test, out, index=args.index)
    print(f"wrote {', '.join(written)} in {out}")
    return 0


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CliError as exc:
        print(f"fastconv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

"""``fastconv train``: a recipe (:mod:`fastconv.train.recipes`) on MNIST, with a
progress bar, one line per epoch, and the run's folder: params.npz, model.json,
history.json and the plots."""
import contextlib
import os
import sys
import tempfile
import time

from ..io.checkpoint import CheckpointError
from ..train.optim import OPTIMIZER_NAMES
from ..train.recipes import MAX_SHIFT, RECIPES
from ..train.schedules import SCHEDULES
from . import common as C
from .._argtypes import int_in_range, non_negative_int, positive_float, positive_int

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("train", help="train a network on MNIST (default: the book's "
                                     "SimpleConvNet recipe)")
    C.add_model(p, card=False)
    p.add_argument("--preset", choices=sorted(RECIPES), default="book",
                   help="a training recipe: 'book' (the book's: 20 epochs of Adam at lr "
                        "0.001, no augmentation) or 'fast' (3 epochs, He weights, Adam at lr "
                        "0.003 decayed to 0 by a cosine before every update, images shifted "
                        "by up to 1 pixel; see README for its accuracy and time); the "
                        "options below override its values")
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--optimizer", default=None, choices=OPTIMIZER_NAMES)
    p.add_argument("--lr", type=positive_float, default=None)
    p.add_argument("--augment", type=int_in_range(0, MAX_SHIFT), default=None, metavar="PX",
                   help=f"shift each training image by up to PX pixels at random, at most "
                        f"{MAX_SHIFT} (the book's recipe: 0)")
    p.add_argument("--init", choices=["book", "he"], default=None,
                   help="initial weights: the book's (SimpleConvNet: normal with std 0.01; "
                        "DeepConvNet: He) or He's sqrt(2/fan_in) for every model")
    p.add_argument("--lr-schedule", choices=list(SCHEDULES),
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
    C.add_common(p)
    p.set_defaults(run=run)



def run(args):
    recipe = RECIPES[args.preset].replace(
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        augment=args.augment, init=args.init, lr_schedule=args.lr_schedule)
    C.configure(args)
    args.model = args.model or "simple"
    args.dtype = args.dtype or "float32"
    # Checked first, so that no training (or download) is wasted on a folder
    # that cannot take the results; removed again if the run fails early.
    with C.output_folder(args.out):
        train, test = C.load_data(args, args.limit)
        network = recipe.model(args.model, args.dtype, args.seed)
        return _train(args, recipe, network, train, test)


def _train(args, recipe, network, train, test):
    from tqdm.auto import tqdm

    from .. import functional as F

    (x_train, _), (x_test, t_test) = train, test
    w1_before = network.params["W1"].copy()

    def say(msg):
        if not args.quiet:
            tqdm.write(msg)
            sys.stdout.flush()  # epoch lines must show up when stdout is a pipe

    say(f"training {type(network).__name__} (preset {recipe.name}) "
        f"on {len(x_train)} images "
        f"({len(x_test)} test), {recipe.epochs} epochs, batch {recipe.batch_size}, "
        f"{recipe.optimizer} lr {recipe.lr} ({recipe.lr_schedule}), init {recipe.init}, "
        f"augment {recipe.augment} px, "
        f"{args.dtype}, backend {F.get_backend()}, "
        f"{F.get_num_threads()} threads, seed {args.seed}")

    bar = None
    iters = -(-len(x_train) // recipe.batch_size)

    def on_iteration(trainer, iteration, loss):
        nonlocal bar
        if args.quiet:
            return
        if bar is None:
            bar = tqdm(total=iters, desc=f"epoch {trainer.current_epoch + 1}/{recipe.epochs}",
                       unit="batch", leave=False, dynamic_ncols=True)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def on_epoch(trainer, epoch, record):
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None
        say(f"epoch {epoch:>2}/{recipe.epochs}  loss {record['loss']:.4f}  "
            f"train acc {record['train_acc']:.4f}  test acc {record['test_acc']:.4f}  "
            f"{record['seconds']:.1f} s")

    trainer = recipe.trainer(network, train, test, seed=args.seed,
                             on_iteration=on_iteration, on_epoch=on_epoch)
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
    from ..nn.card import card
    C.write_json(os.path.join(args.out, "model.json"), card(network, model=args.model))
    summary = {
        "model": args.model, "preset": recipe.name, "epochs": recipe.epochs,
        "completed_epochs": trainer.current_epoch,
        "batch_size": recipe.batch_size, "optimizer": recipe.optimizer, "lr": recipe.lr,
        "lr_schedule": recipe.lr_schedule, "augment": recipe.augment, "init": recipe.init,
        "dtype": args.dtype, "backend": F.get_backend(), "threads": F.get_num_threads(),
        "seed": args.seed, "train_size": len(x_train), "test_size": len(x_test),
        "interrupted": interrupted, "wall_seconds": wall, "history": trainer.history,
        "iteration_losses": trainer.train_loss_list,
    }
    if interrupted:
        summary["final_test_acc"] = None
        C.write_json(os.path.join(args.out, "history.json"), summary)
        print(f"interrupted after {trainer.current_epoch} epochs and {trainer.current_iter} "
              f"updates; checkpoint saved to {params_path}", file=sys.stderr)
        return 130

    final = float(network.accuracy(x_test, t_test))
    summary["final_test_acc"] = final
    C.write_json(os.path.join(args.out, "history.json"), summary)
    from . import plots
    plots.plot_learning_curves(trainer.history, os.path.join(args.out, "learning_curves.png"),
                             trainer.train_loss_list)
    pictures = C.save_pictures_of_filters(network, x_test, args.out, before=w1_before)
    print(f"final test accuracy {final:.4f} on {len(x_test)} images; "
          f"{wall:.1f} s for {recipe.epochs} epochs")
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
        raise C.CliError(f"cannot write {path} ({C.reason(failure)}), nor a copy in "
                       f"{tempfile.gettempdir()} ({C.reason(exc)}): the trained parameters "
                       f"are lost") from None
    raise C.CliError(f"cannot write {path} ({C.reason(failure)}); the trained parameters are "
                   f"saved in {fallback} instead (load them with --params {fallback} "
                   f"--model {args.model} --dtype {args.dtype})")

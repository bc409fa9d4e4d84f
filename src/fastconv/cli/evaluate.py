"""``fastconv eval``: test accuracy, the confusion matrix and the misclassified digits."""
import contextlib
import os

import numpy as np

from . import common as C

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("eval", help="test accuracy, confusion matrix and misclassified digits")
    p.add_argument("--params", required=True, metavar="FILE", help="a params.npz from train")
    C.add_model(p)
    p.add_argument("--out", metavar="DIR", help="also write confusion_matrix.png and "
                                                "misclassified.png here")
    C.add_common(p)
    p.set_defaults(run=run)


def run(args):
    C.configure(args)
    network, model = C.load_network(args)
    with contextlib.ExitStack() as stack:
        if args.out:
            stack.enter_context(C.output_folder(args.out))
        _, (x_test, t_test) = C.load_data(args)
        return _evaluate(args, network, model, x_test, t_test)


def _evaluate(args, network, model, x_test, t_test):
    from . import plots as viz

    y = network.predict(x_test).argmax(axis=1)  # predict chunks large inputs itself
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

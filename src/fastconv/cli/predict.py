"""``fastconv predict``: classify pictures of digits."""
import json

import numpy as np

from . import common as C
from .._argtypes import positive_int

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("predict", help="classify your own pictures of digits (PNG, JPEG, BMP)")
    p.add_argument("--params", required=True, metavar="FILE", help="a params.npz from train")
    C.add_model(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="pictures of one digit each")
    p.add_argument("--top", type=positive_int, default=3, help="classes shown per picture")
    p.add_argument("--json", action="store_true",
                   help='print a JSON list of {"path": ..., "top": [[class, probability], ...]}')
    p.add_argument("--show", metavar="OUT.png",
                   help="also draw each preprocessed input beside its probabilities")
    p.set_defaults(run=run)


def run(args):
    from ..io.pictures import images_to_inputs
    from ..nn import softmax

    network, _ = C.load_network(args)
    try:
        x = images_to_inputs(args.images, network.input_dim)
    except (ValueError, ImportError) as exc:  # ImageError names the file
        raise C.CliError(str(exc)) from None
    probs = softmax(network.predict(x))
    top = np.argsort(-probs, axis=1, kind="stable")[:, :args.top]
    rows = [{"path": path, "top": [[int(k), float(probs[i, k])] for k in top[i]]}
            for i, path in enumerate(args.images)]
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(f"{row['path']}: " + ", ".join(f"{k} {p:.3f}" for k, p in row["top"]))
    if args.show:
        from . import plots as viz
        try:
            viz.plot_predictions(x[:, 0], probs, args.images, args.show)
        except OSError as exc:
            raise C.CliError(f"cannot write {args.show}: {exc}") from None
    return 0

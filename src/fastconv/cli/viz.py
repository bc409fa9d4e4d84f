"""``fastconv viz``: the conv1 filters and feature maps of saved parameters."""
import os

from . import common as C

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("viz", help="draw the conv1 filters and feature maps of saved params")
    p.add_argument("--params", required=True, metavar="FILE", help="a params.npz from train")
    C.add_model(p)
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: the folder of --params)")
    p.add_argument("--index", type=int, default=0, help="test image for the feature maps")
    C.add_common(p)
    p.set_defaults(run=run)


def run(args):
    C.configure(args)
    network, _ = C.load_network(args)
    _, (x_test, _) = C.load_data(args)
    if not 0 <= args.index < len(x_test):
        raise C.UsageError(f"argument --index: must be in [0, {len(x_test)}), "
                         f"got {args.index}")
    out = args.out or os.path.dirname(os.path.abspath(args.params))
    with C.output_folder(out):
        written = C.save_pictures_of_filters(network, x_test, out, index=args.index)
    print(f"wrote {', '.join(written)} in {out}")
    return 0

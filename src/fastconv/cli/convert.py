"""``fastconv convert``: the book's pickled parameters as a .npz, safely."""
import numpy as np

from ..io.checkpoint import CheckpointError
from . import common as C

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("convert", help="turn the book's pickled parameters into a .npz, "
                                       "safely (nothing in the pickle is run)")
    p.add_argument("--model", choices=("simple", "deep"), default="simple",
                   help="the book's SimpleConvNet (ch07 params.pkl) or DeepConvNet "
                        "(ch08 deep_convnet_params.pkl)")
    p.add_argument("pickle", metavar="BOOK.pkl")
    p.add_argument("out", metavar="OUT.npz")
    p.set_defaults(run=run)


def run(args):
    from ..io.book_pickle import BookParamsError
    # float64 keeps the book's values exactly; loading casts them to a float32 model.
    network = C.make_model(args.model, np.float64)
    try:
        network.load_book_params(args.pickle)
    except (BookParamsError, ValueError) as exc:
        raise C.CliError(f"cannot convert {args.pickle}: {exc}") from None
    try:
        network.save_params(args.out)
    except (OSError, CheckpointError) as exc:
        raise C.CliError(f"cannot write {args.out}: {C.reason(exc)}") from None
    print(f"wrote {args.out} from {args.pickle} ({args.model} model; the book's dropout "
          f"scaling is folded into the weights). Evaluate it with: "
          f"fastconv eval --model {args.model} --params {args.out}")
    return 0

"""``fastconv serve``: a local page to draw a digit and watch the network read it."""
import contextlib
import os
import sys

from . import common as C
from .._argtypes import int_in_range

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("serve", help="a local page: draw a digit, see what every layer makes of it")
    p.add_argument("--params", required=True, metavar="FILE", help="a params.npz from train")
    C.add_model(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int_in_range(0, 65535), default=8000,
                   help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--save-dir", metavar="DIR", default=None,
                   help='keep drawings labelled here ("keep this drawing as a k"), one '
                        "folder per digit, for `fastconv predict --json DIR/*/*.png`")
    p.add_argument("--quiet", action="store_true", help="do not log each request")
    p.set_defaults(run=run)


def run(args):
    from ..serve import make_server

    network, model = C.load_network(args)
    with contextlib.ExitStack() as stack:
        if args.save_dir is not None:
            # Checked writable before serving; removed again, if still empty,
            # when the server cannot start.
            stack.enter_context(C.output_folder(args.save_dir, "--save-dir"))
        try:
            server = make_server(network, args.host, args.port, save_dir=args.save_dir,
                                 model=model, quiet=args.quiet)
        except OSError as exc:
            raise C.CliError(f"cannot listen on {args.host}:{args.port}: "
                             f"{C.reason(exc)}") from None
        except ValueError as exc:  # a network the page cannot draw for
            raise C.CliError(f"cannot serve {args.params}: {exc}") from None
        return _serve(server, model, args.params)


def _serve(server, model, params):
    with server:
        print(f"serving {model} from {os.path.abspath(params)} at {server.url} "
              "(Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return 0

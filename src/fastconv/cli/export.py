"""``fastconv export``: saved parameters as an ONNX model."""
from . import common as C
from .._argtypes import positive_int

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("export", help="write saved params as an ONNX model (needs onnx)")
    p.add_argument("--params", required=True, metavar="FILE", help="a params.npz from train")
    C.add_model(p)
    p.add_argument("--onnx", required=True, metavar="OUT", help="the .onnx file to write")
    p.add_argument("--batch", type=positive_int, default=None,
                   help="fix the batch dimension (default: any batch size)")
    p.set_defaults(run=run)


def run(args):
    from ..interop import onnx as export

    network, model = C.load_network(args)
    try:
        export.to_onnx(network, args.onnx, batch=args.batch)
    except ImportError as exc:
        raise C.CliError(str(exc)) from None
    except (ValueError, OSError) as exc:
        raise C.CliError(f"cannot export {model} to {args.onnx}: {exc}") from None
    def dims(shape):
        return "(" + ", ".join(str(d) for d in (args.batch or "batch", *shape)) + ")"
    print(f"wrote {args.onnx}: input 'input' {dims(network.input_dim)} float32, "
          f"output 'logits' {dims(network.output_shape)} (scores before the softmax)")
    return 0

"""The book's pickled weights in a fastconv net: read safely, rescaled for dropout."""
from ..io.book_pickle import read_book_params

__all__ = ["load_book_params", "book_dropout_factors"]

# Layers a positive factor passes through unchanged, on its way to a dropout.
_COMMUTE = ("relu", "pool", "dropout")


def load_book_params(net, file_name="params.pkl"):
    """Load a parameter file of the book's ``save_params`` (a pickle) into ``params``.

    The file is read by :func:`fastconv.io.book_pickle.read_book_params`,
    which runs nothing in it. It must hold exactly the names of
    ``params`` with their shapes; values are cast to the net's dtype.
    The book's Dropout is not inverted: at test time it scales its
    input by ``1 - dropout_ratio``, where this net's Dropout passes it
    unchanged. So the parameters of the layer whose output reaches each
    Dropout (through ReLUs, poolings and other Dropouts only, which all
    commute with a positive factor) are scaled by ``1 - dropout_ratio``:
    this net then computes the book's scores, in test and in training
    mode (for DeepConvNet, W7, b7, W8 and b8 are halved). Nothing is
    changed unless every array passes. Raises ValueError otherwise.
    """
    loaded = read_book_params(file_name)
    missing = sorted(set(net.params) - set(loaded))
    extra = sorted(set(loaded) - set(net.params))
    if missing or extra:
        raise ValueError(f"{file_name}: parameter names do not match this network "
                         f"(missing {missing}, unexpected {extra})")
    for name, array in loaded.items():
        if array.shape != net.params[name].shape:
            raise ValueError(f"{file_name}: {name} has shape {array.shape}, "
                             f"this network needs {net.params[name].shape}")
    factors = book_dropout_factors(net)
    for name, array in loaded.items():
        net.params[name] = array * factors.get(name, 1.0)


def book_dropout_factors(net):
    """Parameter name -> the factor that turns the book's values into ``net``'s."""
    owner = {}  # id(layer) -> its parameter names
    for name in net.params:
        owner.setdefault(id(net.params.layer_of(name)), []).append(name)
    layers = [(name, layer, net.layer_types[name]) for name, layer in net.layers.items()]
    factors = {}
    for i, (name, layer, kind) in enumerate(layers):
        if kind.kind != "dropout":
            continue
        j = i - 1
        while j >= 0 and layers[j][2].kind in _COMMUTE:
            j -= 1
        if j < 0 or layers[j][2].kind not in ("conv", "affine"):
            raise ValueError(f"cannot match the book's dropout at {name}: no convolution "
                             f"or affine layer feeds it through ReLUs and poolings only")
        for param in owner[id(layers[j][1])]:
            factors[param] = factors.get(param, 1.0) * (1.0 - layer.dropout_ratio)
    return factors

"""What a network reads in one picture: the input it sees, its answer, and the
feature maps of every convolution on the way.

The picture goes through :mod:`fastconv.io.pictures`, the preprocessing of
``fastconv predict``, so the page shows exactly what ``predict`` would score.
Maps and filters travel as 8-bit gray planes (base64), each plane stretched to
its own range as the training PNGs draw them: a page can paint them straight
into canvas pixels, and a SimpleConvNet's 30 maps are 17 KB instead of a
JSON list of floats four times that size.
"""
import base64
import os
import tempfile
import threading

import numpy as np

from ..io.pictures import ImageError, images_to_inputs
from ..nn import softmax

__all__ = ["Reader"]

# The file name a picture is read under; error messages lose the temporary
# folder and keep what the user sent.
_UPLOAD_NAME = "picture"


def _planes(stack):
    """(K, H, W) values as {"shape", "data"}: base64 of uint8 planes, each
    stretched from its least to its greatest value (a flat plane is black)."""
    stack = np.asarray(stack, dtype=np.float64)
    lo = stack.min(axis=(1, 2), keepdims=True)
    span = stack.max(axis=(1, 2), keepdims=True) - lo
    scaled = np.divide(stack - lo, span, out=np.zeros_like(stack), where=span > 0)
    raw = np.rint(scaled * 255).astype(np.uint8).tobytes()
    return {"shape": list(stack.shape), "data": base64.b64encode(raw).decode("ascii")}


class Reader:
    """A trained network's reading of pictures, for the page.

    Parameters
    ----------
    network : Net
        A net whose input is one gray square plane, ``(1, S, S)``, as
        ``fastconv predict`` needs.
    model : str, optional
        The name shown on the page.

    Layers own their scratch memory, so one network must not run in two
    threads at once: readings take turns (a drawing takes milliseconds).
    """

    def __init__(self, network, model=None):
        dim = tuple(network.input_dim)
        if len(dim) != 3 or dim[0] != 1 or dim[1] != dim[2]:
            raise ValueError(f"the page draws one gray square picture; this network takes "
                             f"{dim}")
        self.network = network
        self.model = model or type(network).__name__
        self.classes = int(np.prod(network.output_shape))
        self._lock = threading.Lock()

    def describe(self):
        """What the page needs once: the model, its classes and conv1's filters."""
        convs = [n for n, t in self.network.layer_types.items() if t.kind == "conv"]
        filters = None
        if convs:
            w = np.asarray(self.network.layers[convs[0]].W)
            # A filter of several input channels is shown by their mean.
            filters = dict(_planes(w.mean(axis=1)), name=convs[0])
        return {"model": self.model, "classes": self.classes,
                "input_dim": list(self.network.input_dim), "convolutions": convs,
                "filters": filters}

    def read(self, picture):
        """The network's reading of ``picture``, the bytes of a picture file.

        Returns a JSON-ready dict: ``top`` ([class, probability] pairs, most
        likely first), ``prediction``, ``probabilities`` (in class order),
        ``input`` (the preprocessed input as a plane) and ``feature_maps``
        (one entry per convolution: its name and its maps after the ReLU that
        follows it, where one does). Raises ImageError (a ValueError) when
        the bytes are not a picture holding a digit.
        """
        x = self.preprocess(picture)
        with self._lock:
            probs = softmax(self.network.predict(x))[0]
            maps = self._feature_maps(x)
        order = np.argsort(-probs, kind="stable")
        return {
            "prediction": int(order[0]),
            "top": [[int(k), float(probs[k])] for k in order],
            "probabilities": [float(p) for p in probs],
            "input": _planes(x[0]),
            "feature_maps": maps,
        }

    def preprocess(self, picture):
        """The ``(1,) + input_dim`` input of a picture file's bytes, as
        ``fastconv predict`` makes it (it reads files, so the bytes pass
        through a private temporary one)."""
        with tempfile.TemporaryDirectory(prefix="fastconv-serve-") as folder:
            path = os.path.join(folder, _UPLOAD_NAME)
            with open(path, "wb") as f:
                f.write(picture)
            try:
                return images_to_inputs([path], self.network.input_dim)
            except ImageError as exc:
                text = str(exc)
                if text.startswith(path):
                    text = "the picture" + text[len(path):]
                raise ImageError(text) from None

    def _feature_maps(self, x):
        """Each convolution's maps for the one input ``x``, after the ReLU
        right behind it (what the next layer sees, as the training PNGs show)."""
        net, found, pending = self.network, [], None
        last = max((i for i, t in enumerate(net.layer_types.values()) if t.kind == "conv"),
                   default=-1)
        for i, (name, layer) in enumerate(net.layers.items()):
            if i > last and pending is None:
                break  # the layers after the last convolution show nothing here
            kind = net.layer_types[name].kind
            x = layer.infer(x)
            if pending is not None:
                maps = x if kind == "relu" else pending[1]
                found.append(dict(_planes(maps[0]), name=pending[0]))
                pending = None
            if kind == "conv":
                pending = (name, x)
                if i == len(net.layers) - 1:
                    found.append(dict(_planes(x[0]), name=name))
        return found

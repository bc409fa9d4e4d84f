"""The public ops under the name PyTorch users look for (``torch.nn.functional``):
everything here is :mod:`fastconv.ops`."""
from .ops import *  # noqa: F403
from .ops import __all__  # noqa: F401

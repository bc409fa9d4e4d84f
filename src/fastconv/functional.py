"""The public ops under the name PyTorch users look for (``torch.nn.functional``):
everything here is :mod:`fastconv.ops`."""
from .ops import *  # noqa: F403
from .ops import __all__  # noqa: F401
# TRANSITION: old names the tests still use, removed with the move
from ._testing import use_conv_plan  # noqa: F401,E402
from .ops.conv_plans import DIRECT_MIN_PIXELS, PER_IMAGE_MIN_PIXELS  # noqa: F401,E402
from .ops.dense import SMALL_PRODUCT_MACS  # noqa: F401,E402
import numpy as np  # noqa: F401,E402

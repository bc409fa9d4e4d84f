"""TRANSITION: the layers moved to fastconv.nn."""
from .nn import *  # noqa: F401,F403
from .nn.arrays import as_float as _as_float  # noqa: F401

"""TRANSITION: the networks moved to fastconv.nn."""
from .nn import *  # noqa: F401,F403
from .nn.zoo import *  # noqa: F401,F403

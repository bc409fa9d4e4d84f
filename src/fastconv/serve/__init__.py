"""``fastconv serve``'s local page: draw a digit and watch the network read it.

:func:`make_server` serves the page (``assets/``, shipped in the package: it
works offline) and its API for a trained network; :class:`Reader` is what
the network reads in one picture; :class:`DrawingFolder` keeps labelled
drawings for ``fastconv predict --json`` to score. Pillow (the cli extra)
reads the pictures; nothing else is needed beyond the standard library.
"""
from .drawings import DrawingFolder, LabelError
from .handler import MAX_BODY, make_server
from .reading import Reader

__all__ = ["make_server", "Reader", "DrawingFolder", "LabelError", "MAX_BODY"]

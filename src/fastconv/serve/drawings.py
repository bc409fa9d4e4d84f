"""Drawings kept with their label: a test set of one's own.

The folder holds one subfolder per class, named by its digit, of PNG files::

    DIR/0/drawing-20261203-141516-1a2b3c4d.png
    DIR/7/...

``fastconv predict --json DIR/*/*.png`` scores it: each row's ``path`` names
its label in its folder. Every file is written by the package's atomic
writer, so a failed save leaves no partial picture for a later score to trip
over.
"""
import os
import re
import secrets
import time

from ..io.checkpoint import atomic_write

__all__ = ["DrawingFolder", "LabelError"]

# One character, a decimal digit: nothing a label holds can name a path.
_DIGIT = re.compile(r"[0-9]\Z")


class LabelError(ValueError):
    """A label that is not one of the network's classes, as one digit."""


class DrawingFolder:
    """Labelled drawings saved under ``root`` (see the module's docstring).

    Parameters
    ----------
    root : path
        The folder; created when missing.
    classes : int
        How many classes the network has: labels run from 0 to
        ``min(classes, 10) - 1``.
    """

    def __init__(self, root, classes=10):
        self.root = os.path.abspath(os.fspath(root))
        self.classes = min(int(classes), 10)
        os.makedirs(self.root, exist_ok=True)

    def label(self, text):
        """The class a label's text names; LabelError unless it is one digit
        of a class."""
        if not isinstance(text, str) or not _DIGIT.match(text) or int(text) >= self.classes:
            raise LabelError(f"the label must be one digit from 0 to {self.classes - 1}, "
                             f"got {text!r}")
        return int(text)

    def save(self, label, picture):
        """Write the picture file's bytes as a new drawing of ``label`` (text,
        checked by :meth:`label`); return its path relative to the folder."""
        digit = str(self.label(label))
        folder = os.path.join(self.root, digit)
        os.makedirs(folder, exist_ok=True)
        # The time orders the files; the random part keeps two saves in the
        # same second apart.
        name = f"drawing-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}.png"
        with atomic_write(os.path.join(folder, name), "wb") as f:
            f.write(picture)
        return f"{digit}/{name}"

    def counts(self):
        """How many drawings each label holds, as {digit: count}."""
        found = {}
        for k in range(self.classes):
            folder = os.path.join(self.root, str(k))
            if os.path.isdir(folder):
                found[str(k)] = sum(1 for n in os.listdir(folder)
                                    if n.endswith(".png") and not n.startswith("."))
        return found

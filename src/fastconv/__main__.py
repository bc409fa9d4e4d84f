"""``python -m fastconv`` is the ``fastconv`` command."""
import sys

from .cli import main

sys.exit(main())

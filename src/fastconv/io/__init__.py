"""Files: atomic, checked checkpoints (:mod:`.checkpoint`), MNIST, pictures.

Nothing here knows about networks: :mod:`fastconv.nn` reads and writes
through it.
"""

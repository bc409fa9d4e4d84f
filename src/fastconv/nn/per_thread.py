"""One object per Python thread: the scratch memory of a layer's test-time calls.

A net's ``predict`` from two Python threads at once must give each the answer it
would get alone; with one scratch buffer per layer the two overwrote each
other's maps (DeepConvNet: wrong scores in 38 of 80 concurrent calls, before
this). Training (forward then backward) keeps its context on the layer and is
one thread's at a time, as in PyTorch.
"""
import threading

__all__ = ["PerThread"]


class PerThread:
    """``get()`` returns the calling thread's object, made by ``make()`` on its
    first call; entries of threads that ended are dropped when a new thread
    arrives. Copies and pickles start empty (scratch memory is not state)."""

    def __init__(self, make):
        self._make = make
        self._values = {}

    def get(self):
        ident = threading.get_ident()
        value = self._values.get(ident)
        if value is None:
            alive = {t.ident for t in threading.enumerate()}
            values = {k: v for k, v in self._values.items() if k in alive}
            value = values[ident] = self._make()
            # Rebinding is atomic: a thread whose entry another thread's rebinding
            # drops makes a new one on its next call.
            self._values = values
        return value

    def __getstate__(self):
        return {"_make": self._make}

    def __setstate__(self, state):
        self._make, self._values = state["_make"], {}

    def __deepcopy__(self, memo):
        return PerThread(self._make)

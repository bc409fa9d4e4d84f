"""Dense products and the fused optimiser step, on the C backend's terms."""
import numpy as np

from .. import _runtime as R
from . import reference as _ref
from . import validate as V

__all__ = ["matmul", "adam_update", "SMALL_PRODUCT_MACS"]



# Products below this many multiply-adds run on one BLAS thread on the C
# backend (see _runtime.blas_single_thread): a woken OpenBLAS worker would spin
# for 0.1 s after them and slow the OpenMP kernels around them. Above it the
# second thread is worth that. Measured: benchmarks/README.md (numpy first).
SMALL_PRODUCT_MACS = 1 << 24


def matmul(a, b, out=None):
    """The products of the layers: ``numpy.matmul(a, b, out=out)``.

    On the C backend a product of fewer than ``SMALL_PRODUCT_MACS``
    multiply-adds runs on one BLAS thread, so that it does not wake numpy's
    BLAS workers; the result is the same product either way.

    Parameters
    ----------
    a, b : ndarray
        The operands.
    out : ndarray, optional
        Where to write the product.

    Returns
    -------
    ndarray
        The product.
    """
    a, b = np.asarray(a), np.asarray(b)
    small = (a.ndim == 2 and b.ndim == 2
             and a.shape[0] * a.shape[1] * b.shape[1] < SMALL_PRODUCT_MACS)
    if small and R.use_c():
        with R.blas_single_thread():
            return np.matmul(a, b, out=out)
    return np.matmul(a, b, out=out)


# --- optimiser step ----------------------------------------------------------------

def adam_update(param, grad, m, v, lr_t, beta1=0.9, beta2=0.999, eps=1e-7):
    """One Adam step, in place: the update of :class:`fastconv.Adam`.

    ``m += (1-beta1)*(grad-m); v += (1-beta2)*(grad*grad-v);
    param -= lr_t*m/(sqrt(v)+eps)``, with lr_t the step's bias-corrected rate.
    No two of the four arrays may share memory (ValueError). The C backend
    makes one pass over memory instead of numpy's ten; it needs param, m and v
    C-contiguous, and otherwise computes with numpy, in the same order of
    operations.

    Parameters
    ----------
    param : ndarray
        The parameter, float32 or float64, updated in place.
    grad : ndarray
        Its gradient, of that shape (cast to param's dtype if needed).
    m, v : ndarray
        The moments, of param's shape and dtype, updated in place.
    lr_t : float
        The step's learning rate.
    beta1, beta2, eps : float
        Adam's constants.
    """
    arrays = {"param": param, "m": m, "v": v}
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must be a float32 or float64 numpy array, got "
                            f"{getattr(a, 'dtype', type(a).__name__)}")
        if a.shape != param.shape or a.dtype != param.dtype:
            raise ValueError(f"{name} has shape {a.shape} and dtype {a.dtype}; param has "
                             f"{param.shape} and {param.dtype}")
        if not a.flags.writeable:
            raise ValueError(f"{name} must be writeable (it is updated in place)")
    grad_in = grad
    grad = np.asarray(grad)
    if grad.shape != param.shape:
        raise ValueError(f"grad has shape {grad.shape}, param has {param.shape}")
    if grad.dtype.kind not in "fiub":
        raise TypeError(f"grad must be a real numeric array, got dtype {grad.dtype}")
    V.no_overlap({"param": param, "grad": grad_in, "m": m, "v": v})
    lr_t, beta1, beta2, eps = (float(a) for a in (lr_t, beta1, beta2, eps))
    if not (R.use_c() and param.size and all(a.flags.c_contiguous for a in arrays.values())):
        _ref.adam_update(param, grad.astype(param.dtype, copy=False), m, v,
                         lr_t, beta1, beta2, eps)
        return
    grad = np.ascontiguousarray(grad, dtype=param.dtype)
    R.ext.adam_update(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                      lr_t, 1 - beta1, 1 - beta2, eps, R.threads_for(param.size))

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Cython bindings of the C kernels in csrc/.

Thin by design: no validation happens here (fastconv.functional does it all
before calling). Each function takes C-contiguous inputs, a preallocated
output of the same float type, and a thread count, and releases the GIL
around the kernel so that other Python threads keep running. Window
arguments come in the order of csrc/fastconv.h: kernel, stride, pad,
dilation, each as (h, w).
"""
from libc.stdint cimport int64_t

cdef extern from "testing.h" nogil:
    int fc_last_team()
    void fc_reset_team()
    void fc_conv_force_baseline(int on)

cdef extern from "fastconv.h" nogil:
    ctypedef int64_t fc_int
    int fc_openmp_enabled()
    int fc_max_threads()
    int fc_thread_limit()
    void fc_im2col_f32(const float *x, fc_int n, fc_int c, fc_int h, fc_int w,
                       fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                       int nthreads, float *col)
    void fc_im2col_f64(const double *x, fc_int n, fc_int c, fc_int h, fc_int w,
                       fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                       int nthreads, double *col)
    void fc_col2im_f32(const float *col, fc_int n, fc_int c, fc_int h, fc_int w,
                       fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                       int nthreads, float *x)
    void fc_col2im_f64(const double *col, fc_int n, fc_int c, fc_int h, fc_int w,
                       fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                       int nthreads, double *x)
    void fc_unfold_f32(const float *x, fc_int n, fc_int c, fc_int h, fc_int w,
                       fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                       fc_int dh, fc_int dw, int batch_inner, int nthreads, float *cols)
    void fc_unfold_f64(const double *x, fc_int n, fc_int c, fc_int h, fc_int w,
                       fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                       fc_int dh, fc_int dw, int batch_inner, int nthreads, double *cols)
    void fc_fold_f32(const float *cols, fc_int n, fc_int c, fc_int h, fc_int w,
                     fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                     fc_int dh, fc_int dw, int batch_inner, int nthreads, float *x)
    void fc_fold_f64(const double *cols, fc_int n, fc_int c, fc_int h, fc_int w,
                     fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                     fc_int dh, fc_int dw, int batch_inner, int nthreads, double *x)
    void fc_max_pool2d_f32(const float *x, fc_int n, fc_int c, fc_int h, fc_int w,
                           fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                           int nthreads, float *out, int64_t *argmax)
    void fc_max_pool2d_f64(const double *x, fc_int n, fc_int c, fc_int h, fc_int w,
                           fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                           int nthreads, double *out, int64_t *argmax)
    fc_int fc_max_pool2d_backward_f32(const float *dout, const int64_t *argmax, fc_int n,
                                      fc_int c, fc_int h, fc_int w, fc_int oh, fc_int ow,
                                      int nthreads, float *dx)
    fc_int fc_max_pool2d_backward_f64(const double *dout, const int64_t *argmax, fc_int n,
                                      fc_int c, fc_int h, fc_int w, fc_int oh, fc_int ow,
                                      int nthreads, double *dx)
    void fc_avg_pool2d_f32(const float *x, fc_int n, fc_int c, fc_int h, fc_int w,
                           fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                           int nthreads, float *out)
    void fc_avg_pool2d_f64(const double *x, fc_int n, fc_int c, fc_int h, fc_int w,
                           fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                           int nthreads, double *out)
    void fc_avg_pool2d_backward_f32(const float *dout, fc_int n, fc_int c, fc_int h, fc_int w,
                                    fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph,
                                    fc_int pw, int nthreads, float *dx)
    void fc_avg_pool2d_backward_f64(const double *dout, fc_int n, fc_int c, fc_int h,
                                    fc_int w, fc_int kh, fc_int kw, fc_int sh, fc_int sw,
                                    fc_int ph, fc_int pw, int nthreads, double *dx)
    void fc_adam_update_f32(float *param, const float *grad, float *m, float *v, fc_int size,
                            double lr_t, double a1, double a2, double eps, int nthreads)
    void fc_adam_update_f64(double *param, const double *grad, double *m, double *v,
                            fc_int size, double lr_t, double a1, double a2, double eps,
                            int nthreads)
    int fc_conv_available()
    const char *fc_conv_isa()
    void fc_conv_cap_isa(int level)
    int fc_conv2d_f32(const float *x, fc_int n, fc_int c, fc_int h, fc_int w,
                      const float *weight, const float *bias, fc_int fn, fc_int kh, fc_int kw,
                      fc_int ph, fc_int pw, int relu, int nthreads, float *out)
    int fc_conv2d_weight_grad_f32(const float *x, const float *dout, fc_int n, fc_int c,
                                  fc_int h, fc_int w, fc_int fn, fc_int kh, fc_int kw,
                                  fc_int ph, fc_int pw, int nthreads, float *dw)
    int fc_conv2d_f64(const double *x, fc_int n, fc_int c, fc_int h, fc_int w,
                      const double *weight, const double *bias, fc_int fn, fc_int kh,
                      fc_int kw, fc_int ph, fc_int pw, int relu, int nthreads, double *out)
    int fc_conv2d_weight_grad_f64(const double *x, const double *dout, fc_int n, fc_int c,
                                  fc_int h, fc_int w, fc_int fn, fc_int kh, fc_int kw,
                                  fc_int ph, fc_int pw, int nthreads, double *dw)

cdef extern from "conv_blocked.h" nogil:
    int fc_blocked_available()
    int fc_blocked_isa_supported(int isa)
    void fc_blocked_cap_isa(int level)
    int fc_blocked_isa()
    fc_int fc_blocked_cb(int isa)
    const char *fc_blocked_isa_name(int isa)
    void fc_blocked_from_nchw_f32(const float *x, fc_int n, fc_int c, fc_int h, fc_int w,
                                  fc_int cb, int nthreads, float *xb)
    void fc_blocked_to_nchw_f32(const float *xb, fc_int n, fc_int c, fc_int h, fc_int w,
                                fc_int cb, int nthreads, float *x)
    void fc_blocked_pool_f32(const float *xb, fc_int n, fc_int c, fc_int h, fc_int w,
                             fc_int cb, fc_int kh, fc_int kw, fc_int sh, fc_int sw,
                             fc_int ph, fc_int pw, int mode, int relu, int nthreads,
                             float *out)
    fc_int fc_blocked_packed_size(fc_int fn, fc_int c, fc_int kh, fc_int kw, fc_int cbi,
                                  fc_int cb)
    void fc_blocked_pack_weight_f32(const float *weight, fc_int fn, fc_int c, fc_int kh,
                                    fc_int kw, fc_int cbi, fc_int cb, float *wp)
    void fc_blocked_pack_weight_grad_input_f32(const float *weight, fc_int fn, fc_int c,
                                               fc_int kh, fc_int kw, fc_int cb, float *wp)
    fc_int fc_conv2d_blocked_workspace(fc_int n, fc_int c, fc_int h, fc_int w, fc_int cbi,
                                       fc_int fn, fc_int kh, fc_int kw, fc_int ph, fc_int pw,
                                       int isa, int nthreads)
    void fc_conv2d_blocked_f32(const float *x, fc_int n, fc_int c, fc_int h, fc_int w,
                               fc_int cbi, const float *wp, const float *bias, fc_int fn,
                               fc_int kh, fc_int kw, fc_int ph, fc_int pw, int relu,
                               int isa, int nthreads, float *ws, float *out)
    fc_int fc_conv2d_blocked_grad_input_workspace(fc_int n, fc_int c, fc_int h, fc_int w,
                                                  fc_int fn, fc_int kh, fc_int kw,
                                                  fc_int ph, fc_int pw, int isa,
                                                  int nthreads)
    void fc_conv2d_blocked_grad_input_f32(const float *dout, fc_int n, fc_int c, fc_int h,
                                          fc_int w, const float *wpt, fc_int fn, fc_int kh,
                                          fc_int kw, fc_int ph, fc_int pw, int isa,
                                          int nthreads, float *ws, float *dx)
    fc_int fc_conv2d_blocked_weight_grad_workspace(fc_int n, fc_int c, fc_int h, fc_int w,
                                                   fc_int cbi, fc_int fn, fc_int kh,
                                                   fc_int kw, fc_int ph, fc_int pw,
                                                   int isa, int nthreads)
    void fc_conv2d_blocked_weight_grad_f32(const float *x, const float *dout, fc_int n,
                                           fc_int c, fc_int h, fc_int w, fc_int cbi,
                                           fc_int fn, fc_int kh, fc_int kw, fc_int ph,
                                           fc_int pw, int isa, int nthreads, float *ws,
                                           float *dw, float *db)


ctypedef fused real:
    float
    double


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(fc_openmp_enabled())


def max_threads():
    """omp_get_max_threads() for the calling thread (1 without OpenMP)."""
    return fc_max_threads()


def thread_limit():
    """omp_get_thread_limit() (1 without OpenMP)."""
    return fc_thread_limit()


def last_team():
    """Team size of the last parallel region a kernel ran; 0 if none since reset_team()."""
    return fc_last_team()


def reset_team():
    fc_reset_team()


def im2col(const real[:, :, :, ::1] x, fc_int kh, fc_int kw, fc_int sh, fc_int sw,
           fc_int ph, fc_int pw, int nthreads, real[:, ::1] col):
    cdef fc_int n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    with nogil:
        if real is float:
            fc_im2col_f32(&x[0, 0, 0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw, nthreads,
                          &col[0, 0])
        else:
            fc_im2col_f64(&x[0, 0, 0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw, nthreads,
                          &col[0, 0])


def col2im(const real[:, ::1] col, fc_int kh, fc_int kw, fc_int sh, fc_int sw,
           fc_int ph, fc_int pw, int nthreads, real[:, :, :, ::1] x):
    cdef fc_int n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    with nogil:
        if real is float:
            fc_col2im_f32(&col[0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw, nthreads,
                          &x[0, 0, 0, 0])
        else:
            fc_col2im_f64(&col[0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw, nthreads,
                          &x[0, 0, 0, 0])


def unfold(const real[:, :, :, ::1] x, fc_int kh, fc_int kw, fc_int sh, fc_int sw,
           fc_int ph, fc_int pw, fc_int dh, fc_int dw, bint batch_inner, int nthreads,
           real[:, :, ::1] cols):
    """cols is (N, C*kh*kw, L), or (C*kh*kw, N, L) with batch_inner."""
    cdef fc_int n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    with nogil:
        if real is float:
            fc_unfold_f32(&x[0, 0, 0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw,
                          batch_inner, nthreads, &cols[0, 0, 0])
        else:
            fc_unfold_f64(&x[0, 0, 0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw,
                          batch_inner, nthreads, &cols[0, 0, 0])


def fold(const real[:, :, ::1] cols, fc_int kh, fc_int kw, fc_int sh, fc_int sw,
         fc_int ph, fc_int pw, fc_int dh, fc_int dw, bint batch_inner, int nthreads,
         real[:, :, :, ::1] x):
    """cols is (N, C*kh*kw, L), or (C*kh*kw, N, L) with batch_inner."""
    cdef fc_int n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    with nogil:
        if real is float:
            fc_fold_f32(&cols[0, 0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw,
                        batch_inner, nthreads, &x[0, 0, 0, 0])
        else:
            fc_fold_f64(&cols[0, 0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw,
                        batch_inner, nthreads, &x[0, 0, 0, 0])


def max_pool2d(const real[:, :, :, ::1] x, fc_int kh, fc_int kw, fc_int sh, fc_int sw,
               fc_int ph, fc_int pw, int nthreads, real[:, :, :, ::1] out,
               int64_t[:, :, :, ::1] argmax):
    """argmax may be None: the values only (no index is written anywhere)."""
    cdef fc_int n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef int64_t *ap = NULL
    if argmax is not None:
        ap = &argmax[0, 0, 0, 0]
    with nogil:
        if real is float:
            fc_max_pool2d_f32(&x[0, 0, 0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw, nthreads,
                              &out[0, 0, 0, 0], ap)
        else:
            fc_max_pool2d_f64(&x[0, 0, 0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw, nthreads,
                              &out[0, 0, 0, 0], ap)


def max_pool2d_backward(const real[:, :, :, ::1] dout, const int64_t[:, :, :, ::1] argmax,
                        int nthreads, real[:, :, :, ::1] dx):
    """Returns how many indices were out of range (and skipped)."""
    cdef fc_int n = dx.shape[0], c = dx.shape[1], h = dx.shape[2], w = dx.shape[3]
    cdef fc_int oh = dout.shape[2], ow = dout.shape[3], bad
    with nogil:
        if real is float:
            bad = fc_max_pool2d_backward_f32(&dout[0, 0, 0, 0], &argmax[0, 0, 0, 0], n, c, h,
                                             w, oh, ow, nthreads, &dx[0, 0, 0, 0])
        else:
            bad = fc_max_pool2d_backward_f64(&dout[0, 0, 0, 0], &argmax[0, 0, 0, 0], n, c, h,
                                             w, oh, ow, nthreads, &dx[0, 0, 0, 0])
    return bad


def avg_pool2d(const real[:, :, :, ::1] x, fc_int kh, fc_int kw, fc_int sh, fc_int sw,
               fc_int ph, fc_int pw, int nthreads, real[:, :, :, ::1] out):
    cdef fc_int n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    with nogil:
        if real is float:
            fc_avg_pool2d_f32(&x[0, 0, 0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw, nthreads,
                              &out[0, 0, 0, 0])
        else:
            fc_avg_pool2d_f64(&x[0, 0, 0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw, nthreads,
                              &out[0, 0, 0, 0])


def avg_pool2d_backward(const real[:, :, :, ::1] dout, fc_int kh, fc_int kw, fc_int sh,
                        fc_int sw, fc_int ph, fc_int pw, int nthreads, real[:, :, :, ::1] dx):
    cdef fc_int n = dx.shape[0], c = dx.shape[1], h = dx.shape[2], w = dx.shape[3]
    with nogil:
        if real is float:
            fc_avg_pool2d_backward_f32(&dout[0, 0, 0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw,
                                       nthreads, &dx[0, 0, 0, 0])
        else:
            fc_avg_pool2d_backward_f64(&dout[0, 0, 0, 0], n, c, h, w, kh, kw, sh, sw, ph, pw,
                                       nthreads, &dx[0, 0, 0, 0])


def adam_update(real[::1] param, const real[::1] grad, real[::1] m, real[::1] v,
                double lr_t, double one_minus_beta1, double one_minus_beta2, double eps,
                int nthreads):
    """One Adam step in place on flat, equally long arrays."""
    cdef fc_int size = param.shape[0]
    with nogil:
        if real is float:
            fc_adam_update_f32(&param[0], &grad[0], &m[0], &v[0], size, lr_t,
                               one_minus_beta1, one_minus_beta2, eps, nthreads)
        else:
            fc_adam_update_f64(&param[0], &grad[0], &m[0], &v[0], size, lr_t,
                               one_minus_beta1, one_minus_beta2, eps, nthreads)


def conv_available():
    """True when the direct convolution kernels were compiled in."""
    return bool(fc_conv_available())


def conv_isa():
    """The instruction set the direct convolution uses now: "avx2", "baseline" or "none"."""
    return fc_conv_isa().decode()


def conv_force_baseline(bint on):
    """Make the direct convolution use its baseline build even where AVX2 exists (tests)."""
    fc_conv_force_baseline(on)


def conv_cap_isa(int level):
    """The highest instruction set the direct and the blocked convolutions may use
    (0 baseline, 1 AVX2, 2 AVX-512): one cap for both families."""
    fc_conv_cap_isa(level)
    fc_blocked_cap_isa(level)


def _status(int status):
    if status == -1:
        raise MemoryError("not enough memory for the direct convolution's buffers")
    if status != 0:
        raise RuntimeError("the direct convolution is not compiled into this build")


def conv2d(const real[:, :, :, ::1] x, const real[:, :, :, ::1] weight, bias,
           fc_int ph, fc_int pw, bint relu, int nthreads, real[:, :, :, ::1] out):
    """Stride-1 correlation of x with weight (plus bias, an (FN,) array of x's dtype, or
    None), then max(., 0) when relu is true."""
    cdef fc_int n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef fc_int fn = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
    cdef const real[::1] b
    cdef const real *bp = NULL
    cdef int status
    if bias is not None:
        b = bias
        bp = &b[0]
    with nogil:
        if real is float:
            status = fc_conv2d_f32(&x[0, 0, 0, 0], n, c, h, w, &weight[0, 0, 0, 0], bp, fn,
                                   kh, kw, ph, pw, relu, nthreads, &out[0, 0, 0, 0])
        else:
            status = fc_conv2d_f64(&x[0, 0, 0, 0], n, c, h, w, &weight[0, 0, 0, 0], bp, fn,
                                   kh, kw, ph, pw, relu, nthreads, &out[0, 0, 0, 0])
    _status(status)


def conv2d_weight_grad(const real[:, :, :, ::1] x, const real[:, :, :, ::1] dout,
                       fc_int ph, fc_int pw, int nthreads, real[:, :, :, ::1] dw):
    """dW of a stride-1 correlation: dw (FN, C, KH, KW) from x and dout."""
    cdef fc_int n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef fc_int fn = dw.shape[0], kh = dw.shape[2], kw = dw.shape[3]
    cdef int status
    with nogil:
        if real is float:
            status = fc_conv2d_weight_grad_f32(&x[0, 0, 0, 0], &dout[0, 0, 0, 0], n, c, h, w,
                                               fn, kh, kw, ph, pw, nthreads, &dw[0, 0, 0, 0])
        else:
            status = fc_conv2d_weight_grad_f64(&x[0, 0, 0, 0], &dout[0, 0, 0, 0], n, c, h, w,
                                               fn, kh, kw, ph, pw, nthreads, &dw[0, 0, 0, 0])
    _status(status)


# --- channel-blocked convolution, float32 (csrc/conv_blocked.h) -------------------
# Blocked tensors (n, ceil(c/cb), h, w, cb) and packed weights travel as flat
# float32 arrays with their sizes passed alongside, in the C argument order:
# inputs, sizes, window, isa, nthreads, workspace, output. isa is the one the
# caller chose (blocked_isa()) and kept with its blocked arrays: cb, the
# layout and the rounding depend on it.

def blocked_available():
    """True when the blocked convolution kernels were compiled in."""
    return bool(fc_blocked_available())


def blocked_isa():
    """The instruction set the blocked kernels would use now (0 baseline, 1 AVX2,
    2 AVX-512): the best this CPU runs under the cap of conv_cap_isa."""
    return fc_blocked_isa()


def blocked_isa_supported(int isa):
    """True when this CPU runs the blocked kernels' build for isa."""
    return bool(fc_blocked_isa_supported(isa))


def blocked_isa_name(int isa):
    """"avx512", "avx2" or "baseline"."""
    return fc_blocked_isa_name(isa).decode()


def blocked_cb(int isa):
    """Channels per block for isa: 16 (AVX-512) or 8."""
    return fc_blocked_cb(isa)


def blocked_from_nchw(const float[:, :, :, ::1] x, fc_int cb, int nthreads,
                      float[::1] xb):
    """NCHW x -> blocked xb (padding lanes zeroed)."""
    cdef fc_int n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    with nogil:
        fc_blocked_from_nchw_f32(&x[0, 0, 0, 0], n, c, h, w, cb, nthreads, &xb[0])


def blocked_to_nchw(const float[::1] xb, fc_int cb, int nthreads,
                    float[:, :, :, ::1] x):
    """Blocked xb -> NCHW x (padding lanes dropped)."""
    cdef fc_int n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    with nogil:
        fc_blocked_to_nchw_f32(&xb[0], n, c, h, w, cb, nthreads, &x[0, 0, 0, 0])


def blocked_pool(const float[::1] xb, fc_int n, fc_int c, fc_int h, fc_int w, fc_int cb,
                 fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw, int mode,
                 bint relu, int nthreads, float[::1] out):
    """Max (mode 0) or average (1) pooling, blocked xb -> blocked out."""
    with nogil:
        fc_blocked_pool_f32(&xb[0], n, c, h, w, cb, kh, kw, sh, sw, ph, pw, mode, relu,
                            nthreads, &out[0])


def blocked_packed_size(fc_int fn, fc_int c, fc_int kh, fc_int kw, fc_int cbi, fc_int cb):
    """Values in a packed weight array."""
    return fc_blocked_packed_size(fn, c, kh, kw, cbi, cb)


def blocked_pack_weight(const float[:, :, :, ::1] weight, fc_int cbi, fc_int cb,
                        float[::1] wp):
    """weight (FN, C, KH, KW) -> the forward's packing for input blocks of cbi."""
    cdef fc_int fn = weight.shape[0], c = weight.shape[1]
    cdef fc_int kh = weight.shape[2], kw = weight.shape[3]
    with nogil:
        fc_blocked_pack_weight_f32(&weight[0, 0, 0, 0], fn, c, kh, kw, cbi, cb, &wp[0])


def blocked_pack_weight_grad_input(const float[:, :, :, ::1] weight, fc_int cb,
                                   float[::1] wp):
    """weight (FN, C, KH, KW) -> the input gradient's packing (flipped, transposed)."""
    cdef fc_int fn = weight.shape[0], c = weight.shape[1]
    cdef fc_int kh = weight.shape[2], kw = weight.shape[3]
    with nogil:
        fc_blocked_pack_weight_grad_input_f32(&weight[0, 0, 0, 0], fn, c, kh, kw, cb, &wp[0])


def conv2d_blocked_workspace(fc_int n, fc_int c, fc_int h, fc_int w, fc_int cbi, fc_int fn,
                             fc_int kh, fc_int kw, fc_int ph, fc_int pw, int isa,
                             int nthreads):
    """float32 values of scratch conv2d_blocked needs with these arguments."""
    return fc_conv2d_blocked_workspace(n, c, h, w, cbi, fn, kh, kw, ph, pw, isa, nthreads)


def conv2d_blocked(const float[::1] x, fc_int n, fc_int c, fc_int h, fc_int w, fc_int cbi,
                   const float[::1] wp, bias, fc_int fn, fc_int kh, fc_int kw, fc_int ph,
                   fc_int pw, bint relu, int isa, int nthreads, float[::1] ws,
                   float[::1] out):
    """Stride-1 correlation of x (NCHW: cbi 1, or blocked: cbi cb) with packed
    weights, plus bias (an (FN,) float32 array, or None), then max(., 0) when relu
    is true; out blocked (n, ceil(fn/cb), oh, ow, cb)."""
    cdef const float[::1] b
    cdef const float *bp = NULL
    if bias is not None:
        b = bias
        bp = &b[0]
    with nogil:
        fc_conv2d_blocked_f32(&x[0], n, c, h, w, cbi, &wp[0], bp, fn, kh, kw, ph, pw, relu,
                              isa, nthreads, &ws[0], &out[0])


def conv2d_blocked_grad_input_workspace(fc_int n, fc_int c, fc_int h, fc_int w, fc_int fn,
                                        fc_int kh, fc_int kw, fc_int ph, fc_int pw, int isa,
                                        int nthreads):
    """float32 values of scratch conv2d_blocked_grad_input needs."""
    return fc_conv2d_blocked_grad_input_workspace(n, c, h, w, fn, kh, kw, ph, pw, isa,
                                                  nthreads)


def conv2d_blocked_grad_input(const float[::1] dout, fc_int n, fc_int c, fc_int h, fc_int w,
                              const float[::1] wpt, fc_int fn, fc_int kh, fc_int kw,
                              fc_int ph, fc_int pw, int isa, int nthreads, float[::1] ws,
                              float[::1] dx):
    """dx (blocked, c channels of h x w) from blocked dout and the input
    gradient's packing of the weights (needs ph <= kh-1, pw <= kw-1)."""
    with nogil:
        fc_conv2d_blocked_grad_input_f32(&dout[0], n, c, h, w, &wpt[0], fn, kh, kw, ph, pw,
                                         isa, nthreads, &ws[0], &dx[0])


def conv2d_blocked_weight_grad_workspace(fc_int n, fc_int c, fc_int h, fc_int w, fc_int cbi,
                                         fc_int fn, fc_int kh, fc_int kw, fc_int ph,
                                         fc_int pw, int isa, int nthreads):
    """float32 values of scratch conv2d_blocked_weight_grad needs."""
    return fc_conv2d_blocked_weight_grad_workspace(n, c, h, w, cbi, fn, kh, kw, ph, pw, isa,
                                                   nthreads)


def conv2d_blocked_weight_grad(const float[::1] x, const float[::1] dout, fc_int n, fc_int c,
                               fc_int h, fc_int w, fc_int cbi, fc_int fn, fc_int kh,
                               fc_int kw, fc_int ph, fc_int pw, int isa, int nthreads,
                               float[::1] ws, float[::1] dw, db):
    """dw (FN, C, KH, KW, flat) from x (as in the forward) and blocked dout; db
    (an (FN,) float32 array) gets dout's sums, or None."""
    cdef float[::1] dbv
    cdef float *dbp = NULL
    if db is not None:
        dbv = db
        dbp = &dbv[0]
    with nogil:
        fc_conv2d_blocked_weight_grad_f32(&x[0], &dout[0], n, c, h, w, cbi, fn, kh, kw, ph,
                                          pw, isa, nthreads, &ws[0], &dw[0], dbp)


cdef extern from *:
    """
    #ifndef FASTCONV_BUILD_COMPILER
    #define FASTCONV_BUILD_COMPILER "unknown"
    #define FASTCONV_BUILD_TARGET "unknown"
    #define FASTCONV_BUILD_OPENMP_LIBS ""
    #endif
    #ifdef _OPENMP
    #define FASTCONV_BUILD_OPENMP_SPEC _OPENMP
    #else
    #define FASTCONV_BUILD_OPENMP_SPEC 0
    #endif
    """
    const char *FASTCONV_BUILD_COMPILER
    const char *FASTCONV_BUILD_TARGET
    const char *FASTCONV_BUILD_OPENMP_LIBS
    long FASTCONV_BUILD_OPENMP_SPEC


def build_info():
    """How this extension was built: compiler, target, OpenMP (spec date, libraries)."""
    return {
        "compiler": FASTCONV_BUILD_COMPILER.decode(),
        "target": FASTCONV_BUILD_TARGET.decode(),
        "openmp_spec": FASTCONV_BUILD_OPENMP_SPEC,
        "openmp_libs": [s for s in FASTCONV_BUILD_OPENMP_LIBS.decode().split(",") if s],
    }

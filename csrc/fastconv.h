/* fastconv's C kernels, float and double: the one header.
 *
 * Arrays are C-contiguous NCHW. Sizes and indices are int64_t throughout so that
 * no product overflows on large inputs. Argument order, everywhere: input
 * pointer(s), sizes, window (kernel, stride, pad, dilation, each as _h, _w),
 * thread count, output last.
 * Kernels never validate: fastconv.functional checks every argument (output
 * size >= 1, pool pad <= kernel/2, no overlap of output and input, ...) before
 * calling them. The patch and pooling kernels never allocate; the direct
 * convolution allocates per-image scratch and reports failure.
 * nthreads <= 1 runs without entering any OpenMP region, which is what keeps a
 * fork()ed child of an OpenMP parent from hanging in libgomp.
 */
#ifndef FASTCONV_H
#define FASTCONV_H

#include <stdint.h>

typedef int64_t fc_int;

/* --- runtime (runtime.c) --------------------------------------------------- */
int fc_openmp_enabled(void);
int fc_max_threads(void);
int fc_thread_limit(void);

#define FC_DECLARE(T, S)                                                                   \
  /* --- patches (patches.c) --- */                                                       \
  void fc_im2col_##S(const T *x, fc_int n, fc_int c, fc_int h, fc_int w, fc_int kernel_h, \
                     fc_int kernel_w, fc_int stride_h, fc_int stride_w, fc_int pad_h,      \
                     fc_int pad_w, int nthreads, T *col);                                  \
  void fc_col2im_##S(const T *col, fc_int n, fc_int c, fc_int h, fc_int w,                 \
                     fc_int kernel_h, fc_int kernel_w, fc_int stride_h, fc_int stride_w,   \
                     fc_int pad_h, fc_int pad_w, int nthreads, T *x);                      \
  void fc_unfold_##S(const T *x, fc_int n, fc_int c, fc_int h, fc_int w, fc_int kernel_h, \
                     fc_int kernel_w, fc_int stride_h, fc_int stride_w, fc_int pad_h,      \
                     fc_int pad_w, fc_int dilation_h, fc_int dilation_w, int batch_inner,  \
                     int nthreads, T *cols);                                               \
  void fc_fold_##S(const T *cols, fc_int n, fc_int c, fc_int h, fc_int w, fc_int kernel_h,\
                   fc_int kernel_w, fc_int stride_h, fc_int stride_w, fc_int pad_h,        \
                   fc_int pad_w, fc_int dilation_h, fc_int dilation_w, int batch_inner,    \
                   int nthreads, T *x);                                                    \
  /* --- pooling (pooling.c); argmax may be NULL: values only --- */                     \
  void fc_max_pool2d_##S(const T *x, fc_int n, fc_int c, fc_int h, fc_int w,               \
                         fc_int kernel_h, fc_int kernel_w, fc_int stride_h,                \
                         fc_int stride_w, fc_int pad_h, fc_int pad_w, int nthreads,        \
                         T *out, int64_t *argmax);                                         \
  /* Returns how many indices fell outside [0, h*w); those are skipped, not written. */  \
  fc_int fc_max_pool2d_backward_##S(const T *dout, const int64_t *argmax, fc_int n,       \
                                    fc_int c, fc_int h, fc_int w, fc_int out_h,            \
                                    fc_int out_w, int nthreads, T *dx);                    \
  void fc_avg_pool2d_##S(const T *x, fc_int n, fc_int c, fc_int h, fc_int w,               \
                         fc_int kernel_h, fc_int kernel_w, fc_int stride_h,                \
                         fc_int stride_w, fc_int pad_h, fc_int pad_w, int nthreads,        \
                         T *out);                                                          \
  void fc_avg_pool2d_backward_##S(const T *dout, fc_int n, fc_int c, fc_int h, fc_int w,   \
                                  fc_int kernel_h, fc_int kernel_w, fc_int stride_h,       \
                                  fc_int stride_w, fc_int pad_h, fc_int pad_w,             \
                                  int nthreads, T *dx);                                    \
  /* --- optimiser (optim.c) --- */                                                       \
  void fc_adam_update_##S(T *param, const T *grad, T *m, T *v, fc_int size, double lr_t,   \
                          double one_minus_beta1, double one_minus_beta2, double eps,      \
                          int nthreads);

FC_DECLARE(float, f32)
FC_DECLARE(double, f64)

#undef FC_DECLARE

/* --- direct stride-1 convolution (conv_direct.c) ------------------------------
 * Weights (fn, c, kernel_h, kernel_w), x (n, c, h, w), out (n, fn, OH, OW) with
 * OH = h + 2*pad_h - kernel_h + 1; bias may be NULL; relu != 0 writes
 * max(out, 0) (NaN kept). Return 0, -1 when out of memory, -2 when not compiled in. */
int fc_conv_available(void);
const char *fc_conv_isa(void);
/* The highest instruction set the direct kernels may use: 0 baseline, 1 AVX2. */
void fc_conv_cap_isa(int level);
#define FC_DECLARE_DIRECT(T, S)                                                             \
  int fc_conv2d_##S(const T *x, fc_int n, fc_int c, fc_int h, fc_int w, const T *weight,    \
                    const T *bias, fc_int fn, fc_int kernel_h, fc_int kernel_w,             \
                    fc_int pad_h, fc_int pad_w, int relu, int nthreads, T *out);            \
  int fc_conv2d_weight_grad_##S(const T *x, const T *dout, fc_int n, fc_int c, fc_int h,    \
                                fc_int w, fc_int fn, fc_int kernel_h, fc_int kernel_w,      \
                                fc_int pad_h, fc_int pad_w, int nthreads, T *dw);
FC_DECLARE_DIRECT(float, f32)
FC_DECLARE_DIRECT(double, f64)
#undef FC_DECLARE_DIRECT

/* --- channel-blocked stride-1 convolution, float32 (conv_blocked.c): its API,
 * layouts and workspaces are documented in conv_blocked.h. */
#include "conv_blocked.h"

#endif

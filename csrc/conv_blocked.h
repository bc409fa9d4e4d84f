/* Channel-blocked stride-1 convolution (float32): forward, input gradient and
 * weight gradient on the NCHWc layout, for AVX-512F (16 channels a block),
 * AVX2+FMA (8) and a portable baseline (8, GCC/Clang vector extensions).
 *
 * Layouts (cb = fc_blocked_cb(isa); nb(c) = ceil(c / cb)):
 *   blocked tensor   xb[n][nb(c)][h][w][cb]; channels past c are zero.
 *   NCHW input       x[n][c][h][w]: accepted by the forward and the weight
 *                    gradient as "cbi = 1" (it is NCHWc with blocks of 1),
 *                    so a network's first layer needs no conversion.
 *   packed weights   wp[nb(fn)][ceil(c/cbi)][kh][kw][cbi][cb] with cbi = 1
 *                    (NCHW input) or cb (blocked input); entries past fn or c
 *                    are zero. Pack once per weight update, reuse per call.
 * Output sizes: oh = h + 2*pad_h - kh + 1, ow likewise (stride 1, no
 * dilation); the caller guarantees oh, ow >= 1 and, for the input gradient,
 * pad_h <= kh - 1 and pad_w <= kw - 1.
 *
 * Workspaces: every call that needs scratch takes `ws` (T elements, size from
 * the matching *_workspace query with the same arguments and thread count);
 * nothing allocates. Results are bit-identical for every thread count within
 * one isa; different isas round differently (block size, FMA).
 * Argument order: inputs, sizes, window, isa, nthreads, workspace, output.
 * No function validates its arguments (fastconv.functional does).
 */
#ifndef FASTCONV_CONV_BLOCKED_H
#define FASTCONV_CONV_BLOCKED_H

#include "fastconv.h"

#define FC_ISA_BASELINE 0
#define FC_ISA_AVX2 1
#define FC_ISA_AVX512 2

/* 1 when the kernels are compiled in (GCC/Clang vector extensions), else 0:
 * then the three kernels do nothing and fastconv uses another plan. */
int fc_blocked_available(void);
/* The best instruction set this CPU runs, at most `cap` (FASTCONV_ISA). */
int fc_blocked_isa_best(int cap);
/* The cap fc_blocked_isa applies (0 baseline, 1 AVX2, 2 AVX-512; set together
 * with the direct kernels' fc_conv_cap_isa by the binding), and the isa it
 * gives now: fc_blocked_isa_best(cap). */
void fc_blocked_cap_isa(int level);
int fc_blocked_isa(void);
int fc_blocked_isa_supported(int isa);
/* Channels per block for an isa: 16 for AVX-512, 8 otherwise. */
fc_int fc_blocked_cb(int isa);
const char *fc_blocked_isa_name(int isa);

/* NCHW (n, c, h, w) -> blocked xb (n*nb(c)*h*w*cb values, padding lanes zeroed). */
void fc_blocked_from_nchw_f32(const float *x, fc_int n, fc_int c, fc_int h, fc_int w,
                              fc_int cb, int nthreads, float *xb);
/* blocked -> NCHW; the padding lanes are dropped. */
void fc_blocked_to_nchw_f32(const float *xb, fc_int n, fc_int c, fc_int h, fc_int w,
                            fc_int cb, int nthreads, float *x);

/* Values in a packed weight array (see the layout above). */
fc_int fc_blocked_packed_size(fc_int fn, fc_int c, fc_int kh, fc_int kw, fc_int cbi,
                              fc_int cb);
/* weight (fn, c, kh, kw) -> wp for the forward, cbi = 1 or cb. */
void fc_blocked_pack_weight_f32(const float *weight, fc_int fn, fc_int c, fc_int kh,
                                fc_int kw, fc_int cbi, fc_int cb, float *wp);
/* weight (fn, c, kh, kw) -> wp for the input gradient: the kernel flipped in
 * space and transposed in channels, i.e. the forward packing (cbi = cb) of
 * wt[c][f][kh-1-i][kw-1-j] = weight[f][c][i][j]; fc_blocked_packed_size(c, fn,
 * kh, kw, cb, cb) values. */
void fc_blocked_pack_weight_grad_input_f32(const float *weight, fc_int fn, fc_int c,
                                           fc_int kh, fc_int kw, fc_int cb, float *wp);

/* Forward. x is NCHW (cbi = 1) or blocked (cbi = cb) with c channels of h x w;
 * wp from fc_blocked_pack_weight_f32 with the same cbi; bias (fn values) may
 * be NULL; relu != 0 stores max(v, 0) (NaN kept). out: blocked (n, fn, oh, ow). */
fc_int fc_conv2d_blocked_workspace(fc_int n, fc_int c, fc_int h, fc_int w, fc_int cbi,
                                   fc_int fn, fc_int kh, fc_int kw, fc_int pad_h,
                                   fc_int pad_w, int isa, int nthreads);
void fc_conv2d_blocked_f32(const float *x, fc_int n, fc_int c, fc_int h, fc_int w,
                           fc_int cbi, const float *wp, const float *bias, fc_int fn,
                           fc_int kh, fc_int kw, fc_int pad_h, fc_int pad_w, int relu,
                           int isa, int nthreads, float *ws, float *out);

/* Input gradient: dout blocked (n, fn, oh, ow), wpt from
 * fc_blocked_pack_weight_grad_input_f32; dx blocked (n, c, h, w). (A forward
 * correlation with padding kh-1-pad_h, kw-1-pad_w.) */
fc_int fc_conv2d_blocked_grad_input_workspace(fc_int n, fc_int c, fc_int h, fc_int w,
                                              fc_int fn, fc_int kh, fc_int kw,
                                              fc_int pad_h, fc_int pad_w, int isa,
                                              int nthreads);
void fc_conv2d_blocked_grad_input_f32(const float *dout, fc_int n, fc_int c, fc_int h,
                                      fc_int w, const float *wpt, fc_int fn, fc_int kh,
                                      fc_int kw, fc_int pad_h, fc_int pad_w, int isa,
                                      int nthreads, float *ws, float *dx);

/* Weight gradient: x as in the forward (cbi = 1 NCHW, or cb blocked), dout
 * blocked (n, fn, oh, ow). dw (fn, c, kh, kw) in the plain weight layout;
 * db (fn) = dout summed over n, y, x, or NULL. The batch is cut into
 * min(n, 8) chunks whose bounds depend on n only; each chunk's partial
 * gradient is summed in chunk order, so the thread count changes no bit. */
fc_int fc_conv2d_blocked_weight_grad_workspace(fc_int n, fc_int c, fc_int h, fc_int w,
                                               fc_int cbi, fc_int fn, fc_int kh,
                                               fc_int kw, fc_int pad_h, fc_int pad_w,
                                               int isa, int nthreads);
void fc_conv2d_blocked_weight_grad_f32(const float *x, const float *dout, fc_int n,
                                       fc_int c, fc_int h, fc_int w, fc_int cbi,
                                       fc_int fn, fc_int kh, fc_int kw, fc_int pad_h,
                                       fc_int pad_w, int isa, int nthreads, float *ws,
                                       float *dw, float *db);

/* Pooling on blocked xb (n, c, h, w) into blocked out (n, c, oh, ow), oh as
 * fc_out_size; mode 0 max, 1 average (padding counts as zeros in the divisor);
 * pad_h <= kh/2 and pad_w <= kw/2, so every window holds a real cell; relu != 0
 * then stores numpy's maximum(v, 0). Each value has the bits of pooling.c's
 * NCHW kernels, and of np.maximum after them (pool_blocked.c); cb is 8 or 16. */
void fc_blocked_pool_f32(const float *xb, fc_int n, fc_int c, fc_int h, fc_int w, fc_int cb,
                         fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int pad_h,
                         fc_int pad_w, int mode, int relu, int nthreads, float *out);

#endif

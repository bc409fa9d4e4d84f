/* Max and average pooling on the channel-blocked layout (conv_blocked.h), so
 * that a network's test-time pass can stay blocked from one convolution to the
 * next. Each output value is computed as pooling.c computes it (the same
 * comparisons, the same summation order), lane by lane, so the two layouts
 * give the same bits. */
#include "common.h"
#include "conv_blocked.h"

#if defined(__GNUC__) || defined(__clang__)
/* Four lanes at a time in GCC/Clang vector types, the width every baseline
 * target has (SSE2, NEON): plain loops over the lanes, and eight-lane vectors
 * on SSE2, stayed scalar, at two to seven times the NCHW kernel's time. */
typedef float fc_pb_v4f __attribute__((vector_size(16)));
typedef int32_t fc_pb_v4i __attribute__((vector_size(16)));
/* Unaligned loads and stores through this type; memcpy went through the stack. */
typedef float fc_pb_v4fu __attribute__((vector_size(16), aligned(4), may_alias));
#define FC_PB_VEC 4
#else
#define FC_PB_VEC 1
#endif

#if FC_PB_VEC == 4
/* np.maximum(x, 0) lane by lane: NaN kept, -0 becomes +0 (numpy's bits). */
FC_INLINE fc_pb_v4f fc_pb_relu(fc_pb_v4f a) {
  const fc_pb_v4i keep = (a > 0) | (a != a);
  return (fc_pb_v4f)((fc_pb_v4i)a & keep);
}
#endif

/* Lanes [k, k + FC_PB_VEC) of one output pixel; cells are the window's real
 * cells, rows [h0, h1) x columns [w0, w1). */
static void fc_pb_pixel(const float *blk, fc_int w, fc_int cb, fc_int k, fc_int h0, fc_int h1,
                        fc_int w0, fc_int w1, int mode, int relu, float inv, float *o) {
#if FC_PB_VEC == 4
  fc_pb_v4f acc, v;
  if (mode == 0) {
    /* From the first real cell, as pooling.c: padding never wins. */
    acc = *(const fc_pb_v4fu *)(blk + (h0 * w + w0) * cb + k);
    for (fc_int iy = h0; iy < h1; iy++)
      for (fc_int ix = w0; ix < w1; ix++) {
        v = *(const fc_pb_v4fu *)(blk + (iy * w + ix) * cb + k);
        /* Strict >: the first of equal maxima; the first NaN wins and holds. */
        const fc_pb_v4i take = (v > acc) | ((v != v) & (acc == acc));
        acc = (fc_pb_v4f)(((fc_pb_v4i)v & take) | ((fc_pb_v4i)acc & ~take));
      }
  } else {
    acc = (fc_pb_v4f){0};
    for (fc_int iy = h0; iy < h1; iy++)
      for (fc_int ix = w0; ix < w1; ix++) {
        v = *(const fc_pb_v4fu *)(blk + (iy * w + ix) * cb + k);
        acc += v;
      }
    acc *= inv;
  }
  if (relu) acc = fc_pb_relu(acc);
  *(fc_pb_v4fu *)(o + k) = acc;
#else
  float acc = mode == 0 ? blk[(h0 * w + w0) * cb + k] : 0.0f;
  for (fc_int iy = h0; iy < h1; iy++)
    for (fc_int ix = w0; ix < w1; ix++) {
      const float v = blk[(iy * w + ix) * cb + k];
      if (mode != 0)
        acc += v;
      else if ((v > acc) | ((v != v) & (acc == acc)))
        acc = v;
    }
  if (mode != 0) acc *= inv;
  /* np.maximum(x, 0): NaN kept, -0 becomes +0. */
  o[k] = (!relu || acc > 0 || acc != acc) ? acc : 0.0f;
#endif
}

#if FC_PB_VEC == 4
/* The max of a whole 2x2 window, lanes [k, k + 4): the common case, unrolled
 * (with run-time bounds the loops cost about what the comparisons cost). */
FC_INLINE void fc_pb_max2x2(const float *cell, fc_int row, fc_int cb, fc_int k, int relu,
                             float *o) {
  fc_pb_v4f acc, v;
  const float *at[3] = {cell + cb, cell + row, cell + row + cb};
  acc = *(const fc_pb_v4fu *)(cell + k);
  for (int q = 0; q < 3; q++) {
    v = *(const fc_pb_v4fu *)(at[q] + k);
    const fc_pb_v4i take = (v > acc) | ((v != v) & (acc == acc));
    acc = (fc_pb_v4f)(((fc_pb_v4i)v & take) | ((fc_pb_v4i)acc & ~take));
  }
  if (relu) acc = fc_pb_relu(acc);
  *(fc_pb_v4fu *)(o + k) = acc;
}
#endif

/* One output row of one (image, channel block). */
static void fc_pb_row(const float *blk, fc_int h, fc_int w, fc_int cb, fc_int kh, fc_int kw,
                      fc_int sh, fc_int sw, fc_int ph, fc_int pw, fc_int oy, fc_int ow_count,
                      int mode, int relu, float *orow) {
  const fc_int hs = oy * sh - ph;
  const fc_int h0 = hs > 0 ? hs : 0, h1 = hs + kh < h ? hs + kh : h;
  const float inv = 1.0f / ((float)kh * (float)kw);
  for (fc_int ox = 0; ox < ow_count; ox++) {
    const fc_int ws = ox * sw - pw;
    const fc_int w0 = ws > 0 ? ws : 0, w1 = ws + kw < w ? ws + kw : w;
#if FC_PB_VEC == 4
    if (mode == 0 && h1 - h0 == 2 && w1 - w0 == 2 && kh == 2 && kw == 2) {
      for (fc_int k = 0; k < cb; k += FC_PB_VEC)
        fc_pb_max2x2(blk + (h0 * w + w0) * cb, w * cb, cb, k, relu, orow + ox * cb);
      continue;
    }
#endif
    for (fc_int k = 0; k < cb; k += FC_PB_VEC)
      fc_pb_pixel(blk, w, cb, k, h0, h1, w0, w1, mode, relu, inv, orow + ox * cb);
  }
}

void fc_blocked_pool_f32(const float *xb, fc_int n, fc_int c, fc_int h, fc_int w, fc_int cb,
                         fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                         int mode, int relu, int nthreads, float *out) {
  const fc_int oh = fc_out_size(h, kh, sh, ph, 1), ow = fc_out_size(w, kw, sw, pw, 1);
  const fc_int nblk = n * ((c + cb - 1) / cb);
  if (cb % FC_PB_VEC != 0) return; /* blocks are 8 or 16 channels */
  /* Rows of all blocks as tasks: a batch of one image still splits. */
  FC_PARALLEL_FOR(t, nblk * oh, nthreads,
                  fc_pb_row(xb + (t / oh) * h * w * cb, h, w, cb, kh, kw, sh, sw, ph, pw,
                            t % oh, ow, mode, relu, out + ((t / oh) * oh + t % oh) * ow * cb));
}

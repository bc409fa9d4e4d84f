/* Max pooling (value and argmax) and average pooling, forward and backward,
 * written once and included by pooling.c for each scalar type (T, FC_NAME as
 * in patches_impl.h). Every parallel iteration owns one (n, c) plane of the
 * output, so the thread count cannot change a bit.
 */

/* a where m is all ones, b where it is all zeros, without a branch: written
 * as a ternary, gcc emits a jump, and the maxima of real data make it a coin
 * flip; the bitwise form made 2x2 pooling 7x faster on SimpleConvNet's maps. */
static inline T FC_NAME(pick)(FC_UINT m, T a, T b) {
  FC_UINT ua, ub;
  memcpy(&ua, &a, sizeof a);
  memcpy(&ub, &b, sizeof b);
  ub = (ua & m) | (ub & ~m);
  memcpy(&b, &ub, sizeof b);
  return b;
}

/* The maximum of rows [h0, h1) x columns [w0, w1) of a plane, and its flat
 * index. Forced inline so that calls with literal bounds (the 2x2 and 3x3
 * windows that lie wholly inside the plane) unroll: with bounds known only at
 * run time the two-iteration loops cost more than the comparisons. */
FC_INLINE void FC_NAME(window_max)(const T *plane, fc_int w, fc_int h0, fc_int h1,
                                          fc_int w0, fc_int w1, T *out, int64_t *arg) {
  /* Start from the first real cell, not from -inf or index -1: padding can
   * then never win, an all -inf window still points inside the plane, and
   * pad <= kernel/2 guarantees the window holds at least one real cell. */
  int64_t best_i = h0 * w + w0;
  T best = plane[best_i];
  for (fc_int ih = h0; ih < h1; ih++) {
    for (fc_int iw = w0; iw < w1; iw++) {
      const T v = plane[ih * w + iw];
      /* Strict > keeps the first of equal maxima; the second test lets the
       * first NaN win and then hold (every comparison with NaN is false). */
      const int take = (v > best) | ((v != v) & (best == best));
      const int64_t m = -(int64_t)take;
      best_i = (best_i & ~m) | ((ih * w + iw) & m);
      best = FC_NAME(pick)((FC_UINT)m, v, best);
    }
  }
  *out = best;
  *arg = best_i;
}

/* With want_index 0 (inference: values only) argmax is unused and the
 * indices go to a local. Always inlined and called with a literal flag, so
 * each caller gets its own build: a run-time choice of the index pointer in
 * the loop made the 2x2 pooling 4x slower (measured). */
FC_INLINE void FC_NAME(max_pool_plane_impl)(const T *plane, fc_int h, fc_int w, fc_int kh,
                                            fc_int kw, fc_int sh, fc_int sw, fc_int ph,
                                            fc_int pw, fc_int oh_count, fc_int ow_count,
                                            T *out, int64_t *argmax, const int want_index) {
  int64_t unused;
  if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0) {
    /* The book's pooling: every window is whole, so no bounds at all. */
    for (fc_int oh = 0; oh < oh_count; oh++)
      for (fc_int ow = 0; ow < ow_count; ow++) {
        const fc_int base = 2 * oh * w + 2 * ow;
        int64_t *a = want_index ? argmax + oh * ow_count + ow : &unused;
        FC_NAME(window_max)(plane + base, w, 0, 2, 0, 2, out + oh * ow_count + ow, a);
        *a += base;
      }
    return;
  }
  for (fc_int oh = 0; oh < oh_count; oh++) {
    const fc_int hs = oh * sh - ph;
    const fc_int h0 = hs > 0 ? hs : 0, h1 = hs + kh < h ? hs + kh : h;
    for (fc_int ow = 0; ow < ow_count; ow++) {
      const fc_int ws = ow * sw - pw;
      const fc_int w0 = ws > 0 ? ws : 0, w1 = ws + kw < w ? ws + kw : w;
      T *o = out + oh * ow_count + ow;
      int64_t *a = want_index ? argmax + oh * ow_count + ow : &unused;
      const int whole = h0 == hs && w0 == ws && h1 == hs + kh && w1 == ws + kw;
      if (whole && kh == 2 && kw == 2) {
        FC_NAME(window_max)(plane + hs * w + ws, w, 0, 2, 0, 2, o, a);
        *a += hs * w + ws;
      } else if (whole && kh == 3 && kw == 3) {
        FC_NAME(window_max)(plane + hs * w + ws, w, 0, 3, 0, 3, o, a);
        *a += hs * w + ws;
      } else {
        FC_NAME(window_max)(plane, w, h0, h1, w0, w1, o, a);
      }
    }
  }
}

static void FC_NAME(max_pool_plane)(const T *plane, fc_int h, fc_int w, fc_int kh, fc_int kw,
                                    fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                                    fc_int oh_count, fc_int ow_count, T *out,
                                    int64_t *argmax) {
  if (argmax)
    FC_NAME(max_pool_plane_impl)(plane, h, w, kh, kw, sh, sw, ph, pw, oh_count, ow_count, out,
                                 argmax, 1);
  else
    FC_NAME(max_pool_plane_impl)(plane, h, w, kh, kw, sh, sw, ph, pw, oh_count, ow_count, out,
                                 NULL, 0);
}

void FC_NAME(max_pool2d)(const T *x, fc_int n, fc_int c, fc_int h, fc_int w, fc_int kernel_h,
                         fc_int kernel_w, fc_int stride_h, fc_int stride_w, fc_int pad_h,
                         fc_int pad_w, int nthreads, T *out, int64_t *argmax) {
  const fc_int oh = fc_out_size(h, kernel_h, stride_h, pad_h, 1);
  const fc_int ow = fc_out_size(w, kernel_w, stride_w, pad_w, 1);
  FC_PARALLEL_FOR(p, n * c, nthreads,
                  FC_NAME(max_pool_plane)(x + p * h * w, h, w, kernel_h, kernel_w, stride_h,
                                          stride_w, pad_h, pad_w, oh, ow,
                                          out + p * oh * ow,
                                          argmax ? argmax + p * oh * ow : NULL));
}

static fc_int FC_NAME(max_unpool_plane)(const T *dout, const int64_t *argmax, fc_int hw,
                                        fc_int ohw, T *plane) {
  fc_int bad = 0;
  for (fc_int i = 0; i < hw; i++) plane[i] = 0;
  for (fc_int k = 0; k < ohw; k++) {
    const int64_t idx = argmax[k];
    if (FC_INSIDE(idx, hw))
      plane[idx] += dout[k];
    else
      bad++;
  }
  return bad;
}

fc_int FC_NAME(max_pool2d_backward)(const T *dout, const int64_t *argmax, fc_int n, fc_int c,
                                    fc_int h, fc_int w, fc_int out_h, fc_int out_w,
                                    int nthreads, T *dx) {
  const fc_int ohw = out_h * out_w, planes = n * c;
  fc_int bad = 0;
  if (nthreads > 1) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) reduction(+ : bad)
#endif
    for (fc_int p = 0; p < planes; p++) {
      if (p == 0) fc_note_team();
      bad += FC_NAME(max_unpool_plane)(dout + p * ohw, argmax + p * ohw, h * w, ohw,
                                       dx + p * h * w);
    }
  } else {
    for (fc_int p = 0; p < planes; p++)
      bad += FC_NAME(max_unpool_plane)(dout + p * ohw, argmax + p * ohw, h * w, ohw,
                                       dx + p * h * w);
  }
  return bad;
}

static void FC_NAME(avg_pool_plane)(const T *plane, fc_int h, fc_int w, fc_int kh, fc_int kw,
                                    fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                                    fc_int oh_count, fc_int ow_count, T *out) {
  /* count_include_pad: padded cells are zeros that still count in the divisor. */
  const T inv = (T)1 / ((T)kh * (T)kw);
  for (fc_int oh = 0; oh < oh_count; oh++) {
    const fc_int hs = oh * sh - ph;
    const fc_int h0 = hs > 0 ? hs : 0, h1 = hs + kh < h ? hs + kh : h;
    for (fc_int ow = 0; ow < ow_count; ow++) {
      const fc_int ws = ow * sw - pw;
      const fc_int w0 = ws > 0 ? ws : 0, w1 = ws + kw < w ? ws + kw : w;
      T sum = 0;
      for (fc_int ih = h0; ih < h1; ih++)
        for (fc_int iw = w0; iw < w1; iw++) sum += plane[ih * w + iw];
      out[oh * ow_count + ow] = sum * inv;
    }
  }
}

void FC_NAME(avg_pool2d)(const T *x, fc_int n, fc_int c, fc_int h, fc_int w, fc_int kernel_h,
                         fc_int kernel_w, fc_int stride_h, fc_int stride_w, fc_int pad_h,
                         fc_int pad_w, int nthreads, T *out) {
  const fc_int oh = fc_out_size(h, kernel_h, stride_h, pad_h, 1);
  const fc_int ow = fc_out_size(w, kernel_w, stride_w, pad_w, 1);
  FC_PARALLEL_FOR(p, n * c, nthreads,
                  FC_NAME(avg_pool_plane)(x + p * h * w, h, w, kernel_h, kernel_w, stride_h,
                                          stride_w, pad_h, pad_w, oh, ow,
                                          out + p * oh * ow));
}

static void FC_NAME(avg_unpool_plane)(const T *dout, fc_int h, fc_int w, fc_int kh, fc_int kw,
                                      fc_int sh, fc_int sw, fc_int ph, fc_int pw,
                                      fc_int oh_count, fc_int ow_count, T *plane) {
  const T inv = (T)1 / ((T)kh * (T)kw);
  for (fc_int i = 0; i < h * w; i++) plane[i] = 0;
  for (fc_int oh = 0; oh < oh_count; oh++) {
    const fc_int hs = oh * sh - ph;
    const fc_int h0 = hs > 0 ? hs : 0, h1 = hs + kh < h ? hs + kh : h;
    for (fc_int ow = 0; ow < ow_count; ow++) {
      const fc_int ws = ow * sw - pw;
      const fc_int w0 = ws > 0 ? ws : 0, w1 = ws + kw < w ? ws + kw : w;
      const T g = dout[oh * ow_count + ow] * inv;
      for (fc_int ih = h0; ih < h1; ih++)
        for (fc_int iw = w0; iw < w1; iw++) plane[ih * w + iw] += g;
    }
  }
}

void FC_NAME(avg_pool2d_backward)(const T *dout, fc_int n, fc_int c, fc_int h, fc_int w,
                                  fc_int kernel_h, fc_int kernel_w, fc_int stride_h,
                                  fc_int stride_w, fc_int pad_h, fc_int pad_w, int nthreads,
                                  T *dx) {
  const fc_int oh = fc_out_size(h, kernel_h, stride_h, pad_h, 1);
  const fc_int ow = fc_out_size(w, kernel_w, stride_w, pad_w, 1);
  FC_PARALLEL_FOR(p, n * c, nthreads,
                  FC_NAME(avg_unpool_plane)(dout + p * oh * ow, h, w, kernel_h, kernel_w,
                                            stride_h, stride_w, pad_h, pad_w, oh, ow,
                                            dx + p * h * w));
}


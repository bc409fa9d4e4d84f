/* Kernel bodies, written once and included by kernels.c for each scalar type.
 * Before inclusion T is the scalar type and FC_NAME(op) names the exported
 * function for that type (fc_<op>_f32 or fc_<op>_f64).
 *
 * Thread-safety argument, for every kernel: each parallel iteration owns a
 * disjoint slice of the output (a block of rows, or one (n, c) plane), and the
 * order in which values are summed into any one output element depends only on
 * the loop structure inside that slice, never on the thread count. So there is
 * no racing +=, and 1 thread and N threads give identical bytes.
 */

#define FC_OUT_SIZE(size, k, p, s, d) (((size) + 2 * (p) - (d) * ((k) - 1) - 1) / (s) + 1)

/* Caffe-style bounds test: casting to unsigned turns a negative coordinate into
 * a huge one, so a single comparison rejects both ends. */
#define FC_INSIDE(i, size) ((uint64_t)(i) < (uint64_t)(size))

/* One row of the book's layout for a window wholly inside the image: no
 * bounds tests. Forced inline so the calls with literal 3x3 and 5x5 windows
 * unroll into straight copies (runtime trip counts of 3 cost more than the
 * copy itself, as in pooling below). */
FC_INLINE T *FC_NAME(im2col_inside)(const T *start, fc_int c, fc_int hw, fc_int w, fc_int kh,
                                    fc_int kw, T *dst) {
  for (fc_int ci = 0; ci < c; ci++, start += hw)
    for (fc_int i = 0; i < kh; i++)
      for (fc_int j = 0; j < kw; j++) *dst++ = start[i * w + j];
  return dst;
}

/* The same for literal window sizes, one kernel row at a time: a memcpy of a
 * constant 12 or 20 bytes compiles to two or three moves, where the loop
 * above stays one scalar load and store per value (100x1x28x28 5x5, 1
 * thread: 0.64 ms before). */
FC_INLINE T *FC_NAME(im2col_inside_rows)(const T *start, fc_int c, fc_int hw, fc_int w,
                                         fc_int kh, fc_int kw, T *dst) {
  for (fc_int ci = 0; ci < c; ci++, start += hw)
    for (fc_int i = 0; i < kh; i++, dst += kw) memcpy(dst, start + i * w, (size_t)kw * sizeof(T));
  return dst;
}

/* Rows (n, oh) of the book's layout: each writes out_w consecutive rows of
 * c*kernel_h*kernel_w columns, so threads write contiguous, disjoint memory. */
static void FC_NAME(im2col_rows)(const T *x, fc_int n_oh, fc_int c, fc_int h, fc_int w,
                                 fc_int kh, fc_int kw, fc_int ph, fc_int pw, fc_int sh,
                                 fc_int sw, fc_int oh_count, fc_int ow_count, T *col) {
  const fc_int n = n_oh / oh_count, oh = n_oh % oh_count;
  const fc_int ncols = c * kh * kw;
  T *dst = col + n_oh * ow_count * ncols;
  const fc_int ih0 = oh * sh - ph;
  const int h_inside = ih0 >= 0 && ih0 + kh <= h;
  const T *image = x + n * c * h * w;
  for (fc_int ow = 0; ow < ow_count; ow++) {
    const fc_int iw0 = ow * sw - pw;
    const int w_inside = iw0 >= 0 && iw0 + kw <= w;
    if (h_inside && w_inside) {
      const T *start = image + ih0 * w + iw0;
      if (kh == 3 && kw == 3)
        dst = FC_NAME(im2col_inside_rows)(start, c, h * w, w, 3, 3, dst);
      else if (kh == 5 && kw == 5)
        dst = FC_NAME(im2col_inside_rows)(start, c, h * w, w, 5, 5, dst);
      else
        dst = FC_NAME(im2col_inside)(start, c, h * w, w, kh, kw, dst);
      continue;
    }
    for (fc_int ci = 0; ci < c; ci++) {
      const T *plane = image + ci * h * w;
      for (fc_int i = 0; i < kh; i++) {
        const fc_int ih = ih0 + i;
        if (!FC_INSIDE(ih, h)) {
          for (fc_int j = 0; j < kw; j++) *dst++ = 0;
          continue;
        }
        const T *src = plane + ih * w + iw0;
        for (fc_int j = 0; j < kw; j++) *dst++ = FC_INSIDE(iw0 + j, w) ? src[j] : (T)0;
      }
    }
  }
}

void FC_NAME(im2col)(const T *x, fc_int n, fc_int c, fc_int h, fc_int w, fc_int kernel_h,
                     fc_int kernel_w, fc_int pad_h, fc_int pad_w, fc_int stride_h,
                     fc_int stride_w, int nthreads, T *col) {
  const fc_int oh = FC_OUT_SIZE(h, kernel_h, pad_h, stride_h, 1);
  const fc_int ow = FC_OUT_SIZE(w, kernel_w, pad_w, stride_w, 1);
  FC_PARALLEL_FOR(r, n * oh, nthreads,
                  FC_NAME(im2col_rows)(x, r, c, h, w, kernel_h, kernel_w, pad_h, pad_w,
                                       stride_h, stride_w, oh, ow, col));
}

/* The adjoint of im2col_inside: one row of col added into a window wholly
 * inside the image, with literal sizes unrolled as there. */
FC_INLINE void FC_NAME(col2im_inside)(const T *src, fc_int c, fc_int hw, fc_int w, fc_int kh,
                                      fc_int kw, T *start) {
  for (fc_int ci = 0; ci < c; ci++, start += hw)
    for (fc_int i = 0; i < kh; i++)
      for (fc_int j = 0; j < kw; j++) start[i * w + j] += *src++;
}

/* The same with the no-overlap promise, which lets gcc add a 5-wide window
 * row as a vector and a scalar: 100x1x28x28 5x5 took 0.36 ms at 2 threads
 * against 0.45. On 3x3 windows the vector form was slower (64x64x32x32, 1
 * thread: 42 against 37 ms), so those keep the loop above. */
FC_INLINE void FC_NAME(col2im_inside_rows)(const T *FC_RESTRICT src, fc_int c, fc_int hw,
                                           fc_int w, fc_int kh, fc_int kw,
                                           T *FC_RESTRICT start) {
  for (fc_int ci = 0; ci < c; ci++, start += hw)
    for (fc_int i = 0; i < kh; i++, src += kw) {
      T *FC_RESTRICT row = start + i * w;
      for (fc_int j = 0; j < kw; j++) row[j] += src[j];
    }
}

/* Adds image n's rows of col into channels [c0, c1) of dx[n]; zeroes them first.
 * Reading col row by row keeps the large operand streaming while the small image
 * plane it scatters into stays in cache. */
static void FC_NAME(col2im_image)(const T *col, fc_int n, fc_int c0, fc_int c1, fc_int c,
                                  fc_int h, fc_int w, fc_int kh, fc_int kw, fc_int ph,
                                  fc_int pw, fc_int sh, fc_int sw, fc_int oh_count,
                                  fc_int ow_count, T *x) {
  const fc_int ncols = c * kh * kw;
  T *img = x + n * c * h * w;
  for (fc_int i = c0 * h * w; i < c1 * h * w; i++) img[i] = 0;
  for (fc_int oh = 0; oh < oh_count; oh++) {
    const fc_int ih0 = oh * sh - ph;
    for (fc_int ow = 0; ow < ow_count; ow++) {
      const fc_int iw0 = ow * sw - pw;
      const T *src = col + ((n * oh_count + oh) * ow_count + ow) * ncols + c0 * kh * kw;
      if (ih0 >= 0 && ih0 + kh <= h && iw0 >= 0 && iw0 + kw <= w) {
        T *start = img + c0 * h * w + ih0 * w + iw0;
        if (kh == 3 && kw == 3)
          FC_NAME(col2im_inside)(src, c1 - c0, h * w, w, 3, 3, start);
        else if (kh == 5 && kw == 5)
          FC_NAME(col2im_inside_rows)(src, c1 - c0, h * w, w, 5, 5, start);
        else
          FC_NAME(col2im_inside)(src, c1 - c0, h * w, w, kh, kw, start);
        continue;
      }
      for (fc_int ci = c0; ci < c1; ci++) {
        T *plane = img + ci * h * w;
        for (fc_int i = 0; i < kh; i++, src += kw) {
          const fc_int ih = ih0 + i;
          if (!FC_INSIDE(ih, h)) continue;
          T *dst = plane + ih * w + iw0;
          for (fc_int j = 0; j < kw; j++)
            if (FC_INSIDE(iw0 + j, w)) dst[j] += src[j];
        }
      }
    }
  }
}

void FC_NAME(col2im)(const T *col, fc_int n, fc_int c, fc_int h, fc_int w, fc_int kernel_h,
                     fc_int kernel_w, fc_int pad_h, fc_int pad_w, fc_int stride_h,
                     fc_int stride_w, int nthreads, T *x) {
  const fc_int oh = FC_OUT_SIZE(h, kernel_h, pad_h, stride_h, 1);
  const fc_int ow = FC_OUT_SIZE(w, kernel_w, pad_w, stride_w, 1);
  /* Whole images per thread when there are enough of them, else (n, c) planes.
   * Either way each dx element receives its terms in the same (oh, ow, i, j)
   * order, so the split does not change a single bit. */
  if (n >= nthreads) {
    FC_PARALLEL_FOR(ni, n, nthreads,
                    FC_NAME(col2im_image)(col, ni, 0, c, c, h, w, kernel_h, kernel_w, pad_h,
                                          pad_w, stride_h, stride_w, oh, ow, x));
  } else {
    FC_PARALLEL_FOR(p, n * c, nthreads,
                    FC_NAME(col2im_image)(col, p / c, p % c, p % c + 1, c, h, w, kernel_h,
                                          kernel_w, pad_h, pad_w, stride_h, stride_w, oh,
                                          ow, x));
  }
}

/* The span [lo, hi) of output columns whose input column iw0 + ow*sw lies
 * inside [0, w): the columns left of it and right of it read padding. */
FC_INLINE void FC_NAME(inside_span)(fc_int iw0, fc_int sw, fc_int w, fc_int ow_count,
                                    fc_int *lo, fc_int *hi) {
  fc_int a = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
  fc_int b = iw0 >= w ? 0 : (w - 1 - iw0) / sw + 1;
  if (a > ow_count) a = ow_count;
  if (b > ow_count) b = ow_count;
  if (b < a) b = a;
  *lo = a;
  *hi = b;
}

/* One (n, c) plane, as kh*kw rows of oh*ow contiguous values, row r starting
 * at dst + r*row_stride. PyTorch's layout has row_stride = oh*ow; the
 * batch-inner layout (C*kh*kw, N*oh*ow) has row_stride = N*oh*ow. Each output
 * row is split into its padding and inside parts beforehand, so the inside
 * part is a plain strided copy with no test per value. */
static void FC_NAME(unfold_plane)(const T *plane, fc_int h, fc_int w, fc_int kh, fc_int kw,
                                  fc_int ph, fc_int pw, fc_int sh, fc_int sw, fc_int dh,
                                  fc_int dw, fc_int oh_count, fc_int ow_count,
                                  fc_int row_stride, T *dst0) {
  for (fc_int i = 0; i < kh; i++) {
    for (fc_int j = 0; j < kw; j++) {
      T *dst = dst0 + (i * kw + j) * row_stride;
      const fc_int iw0 = j * dw - pw;
      fc_int lo, hi;
      FC_NAME(inside_span)(iw0, sw, w, ow_count, &lo, &hi);
      for (fc_int oh = 0; oh < oh_count; oh++, dst += ow_count) {
        const fc_int ih = oh * sh - ph + i * dh;
        if (!FC_INSIDE(ih, h)) {
          for (fc_int ow = 0; ow < ow_count; ow++) dst[ow] = 0;
          continue;
        }
        const T *row = plane + ih * w;
        for (fc_int ow = 0; ow < lo; ow++) dst[ow] = 0;
        if (sw == 1)
          for (fc_int ow = lo; ow < hi; ow++) dst[ow] = row[iw0 + ow];
        else
          for (fc_int ow = lo; ow < hi; ow++) dst[ow] = row[iw0 + ow * sw];
        for (fc_int ow = hi; ow < ow_count; ow++) dst[ow] = 0;
      }
    }
  }
}

/* Plane p = (n, c) of the input: where its first row starts in cols. */
FC_INLINE fc_int FC_NAME(plane_offset)(fc_int p, fc_int n, fc_int c, fc_int kk, fc_int l,
                                       int batch_inner) {
  if (!batch_inner) return p * kk * l;
  return (p % c) * kk * n * l + (p / c) * l;
}

void FC_NAME(unfold)(const T *x, fc_int n, fc_int c, fc_int h, fc_int w, fc_int kernel_h,
                     fc_int kernel_w, fc_int pad_h, fc_int pad_w, fc_int stride_h,
                     fc_int stride_w, fc_int dilation_h, fc_int dilation_w, int batch_inner,
                     int nthreads, T *cols) {
  const fc_int oh = FC_OUT_SIZE(h, kernel_h, pad_h, stride_h, dilation_h);
  const fc_int ow = FC_OUT_SIZE(w, kernel_w, pad_w, stride_w, dilation_w);
  const fc_int kk = kernel_h * kernel_w, l = oh * ow;
  const fc_int row_stride = batch_inner ? n * l : l;
  FC_PARALLEL_FOR(p, n * c, nthreads,
                  FC_NAME(unfold_plane)(x + p * h * w, h, w, kernel_h, kernel_w, pad_h, pad_w,
                                        stride_h, stride_w, dilation_h, dilation_w, oh, ow,
                                        row_stride,
                                        cols + FC_NAME(plane_offset)(p, n, c, kk, l,
                                                                     batch_inner)));
}

/* The adjoint of unfold_plane: the same rows, summed back into the plane in
 * the order (i, j, oh, ow), whatever the thread count. */
static void FC_NAME(fold_plane)(const T *src0, fc_int h, fc_int w, fc_int kh, fc_int kw,
                                fc_int ph, fc_int pw, fc_int sh, fc_int sw, fc_int dh,
                                fc_int dw, fc_int oh_count, fc_int ow_count,
                                fc_int row_stride, T *plane) {
  for (fc_int i = 0; i < h * w; i++) plane[i] = 0;
  for (fc_int i = 0; i < kh; i++) {
    for (fc_int j = 0; j < kw; j++) {
      const T *src = src0 + (i * kw + j) * row_stride;
      const fc_int iw0 = j * dw - pw;
      fc_int lo, hi;
      FC_NAME(inside_span)(iw0, sw, w, ow_count, &lo, &hi);
      for (fc_int oh = 0; oh < oh_count; oh++, src += ow_count) {
        const fc_int ih = oh * sh - ph + i * dh;
        if (!FC_INSIDE(ih, h)) continue;
        T *row = plane + ih * w;
        if (sw == 1)
          for (fc_int ow = lo; ow < hi; ow++) row[iw0 + ow] += src[ow];
        else
          for (fc_int ow = lo; ow < hi; ow++) row[iw0 + ow * sw] += src[ow];
      }
    }
  }
}

void FC_NAME(fold)(const T *cols, fc_int n, fc_int c, fc_int h, fc_int w, fc_int kernel_h,
                   fc_int kernel_w, fc_int pad_h, fc_int pad_w, fc_int stride_h,
                   fc_int stride_w, fc_int dilation_h, fc_int dilation_w, int batch_inner,
                   int nthreads, T *x) {
  const fc_int oh = FC_OUT_SIZE(h, kernel_h, pad_h, stride_h, dilation_h);
  const fc_int ow = FC_OUT_SIZE(w, kernel_w, pad_w, stride_w, dilation_w);
  const fc_int kk = kernel_h * kernel_w, l = oh * ow;
  const fc_int row_stride = batch_inner ? n * l : l;
  FC_PARALLEL_FOR(p, n * c, nthreads,
                  FC_NAME(fold_plane)(cols + FC_NAME(plane_offset)(p, n, c, kk, l, batch_inner),
                                      h, w, kernel_h, kernel_w, pad_h, pad_w, stride_h,
                                      stride_w, dilation_h, dilation_w, oh, ow, row_stride,
                                      x + p * h * w));
}

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

static void FC_NAME(max_pool_plane)(const T *plane, fc_int h, fc_int w, fc_int kh, fc_int kw,
                                    fc_int ph, fc_int pw, fc_int sh, fc_int sw,
                                    fc_int oh_count, fc_int ow_count, T *out,
                                    int64_t *argmax) {
  if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0) {
    /* The book's pooling: every window is whole, so no bounds at all. */
    for (fc_int oh = 0; oh < oh_count; oh++)
      for (fc_int ow = 0; ow < ow_count; ow++) {
        const fc_int base = 2 * oh * w + 2 * ow;
        FC_NAME(window_max)(plane + base, w, 0, 2, 0, 2, out + oh * ow_count + ow,
                            argmax + oh * ow_count + ow);
        argmax[oh * ow_count + ow] += base;
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
      int64_t *a = argmax + oh * ow_count + ow;
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

void FC_NAME(max_pool2d)(const T *x, fc_int n, fc_int c, fc_int h, fc_int w, fc_int kernel_h,
                         fc_int kernel_w, fc_int pad_h, fc_int pad_w, fc_int stride_h,
                         fc_int stride_w, int nthreads, T *out, int64_t *argmax) {
  const fc_int oh = FC_OUT_SIZE(h, kernel_h, pad_h, stride_h, 1);
  const fc_int ow = FC_OUT_SIZE(w, kernel_w, pad_w, stride_w, 1);
  FC_PARALLEL_FOR(p, n * c, nthreads,
                  FC_NAME(max_pool_plane)(x + p * h * w, h, w, kernel_h, kernel_w, pad_h,
                                          pad_w, stride_h, stride_w, oh, ow,
                                          out + p * oh * ow, argmax + p * oh * ow));
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
    for (fc_int p = 0; p < planes; p++)
      bad += FC_NAME(max_unpool_plane)(dout + p * ohw, argmax + p * ohw, h * w, ohw,
                                       dx + p * h * w);
  } else {
    for (fc_int p = 0; p < planes; p++)
      bad += FC_NAME(max_unpool_plane)(dout + p * ohw, argmax + p * ohw, h * w, ohw,
                                       dx + p * h * w);
  }
  return bad;
}

static void FC_NAME(avg_pool_plane)(const T *plane, fc_int h, fc_int w, fc_int kh, fc_int kw,
                                    fc_int ph, fc_int pw, fc_int sh, fc_int sw,
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
                         fc_int kernel_w, fc_int pad_h, fc_int pad_w, fc_int stride_h,
                         fc_int stride_w, int nthreads, T *out) {
  const fc_int oh = FC_OUT_SIZE(h, kernel_h, pad_h, stride_h, 1);
  const fc_int ow = FC_OUT_SIZE(w, kernel_w, pad_w, stride_w, 1);
  FC_PARALLEL_FOR(p, n * c, nthreads,
                  FC_NAME(avg_pool_plane)(x + p * h * w, h, w, kernel_h, kernel_w, pad_h,
                                          pad_w, stride_h, stride_w, oh, ow,
                                          out + p * oh * ow));
}

static void FC_NAME(avg_unpool_plane)(const T *dout, fc_int h, fc_int w, fc_int kh, fc_int kw,
                                      fc_int ph, fc_int pw, fc_int sh, fc_int sw,
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
                                  fc_int kernel_h, fc_int kernel_w, fc_int pad_h, fc_int pad_w,
                                  fc_int stride_h, fc_int stride_w, int nthreads, T *dx) {
  const fc_int oh = FC_OUT_SIZE(h, kernel_h, pad_h, stride_h, 1);
  const fc_int ow = FC_OUT_SIZE(w, kernel_w, pad_w, stride_w, 1);
  FC_PARALLEL_FOR(p, n * c, nthreads,
                  FC_NAME(avg_unpool_plane)(dout + p * oh * ow, h, w, kernel_h, kernel_w,
                                            pad_h, pad_w, stride_h, stride_w, oh, ow,
                                            dx + p * h * w));
}

/* One Adam step on a parameter, in place, fused into one pass over memory:
 * numpy spends ten passes and five temporaries on the same arithmetic. The
 * operations and their order are numpy's (fastconv/reference.py), each
 * rounded to T, so without FMA contraction the two agree bit for bit. Every
 * element is independent: the thread count cannot change a result. */
static void FC_NAME(adam_block)(T *p, const T *g, T *m, T *v, fc_int lo, fc_int hi, T lr_t,
                                T a1, T a2, T eps) {
  for (fc_int i = lo; i < hi; i++) {
    const T gi = g[i];
    const T mi = m[i] + a1 * (gi - m[i]);
    const T vi = v[i] + a2 * (gi * gi - v[i]);
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] - lr_t * mi / (FC_SQRT(vi) + eps);
  }
}

void FC_NAME(adam_update)(T *param, const T *grad, T *m, T *v, fc_int size, double lr_t,
                          double one_minus_beta1, double one_minus_beta2, double eps,
                          int nthreads) {
  const fc_int block = 4096, blocks = (size + block - 1) / block;
  FC_PARALLEL_FOR(b, blocks, nthreads,
                  FC_NAME(adam_block)(param, grad, m, v, b * block,
                                      b * block + block < size ? b * block + block : size,
                                      (T)lr_t, (T)one_minus_beta1, (T)one_minus_beta2,
                                      (T)eps));
}

#undef FC_OUT_SIZE
#undef FC_INSIDE

/* im2col / col2im (the book's layout) and unfold / fold (PyTorch's), written
 * once and included by patches.c for each scalar type. Before inclusion T is
 * the scalar type and FC_NAME(op) names the exported function for that type.
 *
 * Thread safety, for every kernel here: each parallel iteration owns a
 * disjoint slice of the output (a block of rows, or one (n, c) plane), and the
 * order in which values are summed into any one output element depends only on
 * the loop structure inside that slice, never on the thread count. So there is
 * no racing +=, and 1 thread and N threads give identical bytes.
 */

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
 * above stays one scalar load and store per value (benchmarks/README.md). */
FC_INLINE T *FC_NAME(im2col_inside_rows)(const T *start, fc_int c, fc_int hw, fc_int w,
                                         fc_int kh, fc_int kw, T *dst) {
  for (fc_int ci = 0; ci < c; ci++, start += hw)
    for (fc_int i = 0; i < kh; i++, dst += kw) memcpy(dst, start + i * w, (size_t)kw * sizeof(T));
  return dst;
}

/* Rows (n, oh) of the book's layout: each writes out_w consecutive rows of
 * c*kernel_h*kernel_w columns, so threads write contiguous, disjoint memory. */
static void FC_NAME(im2col_rows)(const T *x, fc_int n_oh, fc_int c, fc_int h, fc_int w,
                                 fc_int kh, fc_int kw, fc_int sh, fc_int sw, fc_int ph,
                                 fc_int pw, fc_int oh_count, fc_int ow_count, T *col) {
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
                     fc_int kernel_w, fc_int stride_h, fc_int stride_w, fc_int pad_h,
                     fc_int pad_w, int nthreads, T *col) {
  const fc_int oh = fc_out_size(h, kernel_h, stride_h, pad_h, 1);
  const fc_int ow = fc_out_size(w, kernel_w, stride_w, pad_w, 1);
  FC_PARALLEL_FOR(r, n * oh, nthreads,
                  FC_NAME(im2col_rows)(x, r, c, h, w, kernel_h, kernel_w, stride_h, stride_w,
                                       pad_h, pad_w, oh, ow, col));
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
 * row as a vector and a scalar: faster on 5x5 windows, slower on 3x3 ones,
 * which keep the loop above (benchmarks/README.md). */
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
                                  fc_int h, fc_int w, fc_int kh, fc_int kw, fc_int sh,
                                  fc_int sw, fc_int ph, fc_int pw, fc_int oh_count,
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
                     fc_int kernel_w, fc_int stride_h, fc_int stride_w, fc_int pad_h,
                     fc_int pad_w, int nthreads, T *x) {
  const fc_int oh = fc_out_size(h, kernel_h, stride_h, pad_h, 1);
  const fc_int ow = fc_out_size(w, kernel_w, stride_w, pad_w, 1);
  /* Whole images per thread when there are enough of them, else (n, c) planes.
   * Either way each dx element receives its terms in the same (oh, ow, i, j)
   * order, so the split does not change a single bit. */
  if (n >= nthreads) {
    FC_PARALLEL_FOR(ni, n, nthreads,
                    FC_NAME(col2im_image)(col, ni, 0, c, c, h, w, kernel_h, kernel_w,
                                          stride_h, stride_w, pad_h, pad_w, oh, ow, x));
  } else {
    FC_PARALLEL_FOR(p, n * c, nthreads,
                    FC_NAME(col2im_image)(col, p / c, p % c, p % c + 1, c, h, w, kernel_h,
                                          kernel_w, stride_h, stride_w, pad_h, pad_w, oh,
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
                                  fc_int sh, fc_int sw, fc_int ph, fc_int pw, fc_int dh,
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
                     fc_int kernel_w, fc_int stride_h, fc_int stride_w, fc_int pad_h,
                     fc_int pad_w, fc_int dilation_h, fc_int dilation_w, int batch_inner,
                     int nthreads, T *cols) {
  const fc_int oh = fc_out_size(h, kernel_h, stride_h, pad_h, dilation_h);
  const fc_int ow = fc_out_size(w, kernel_w, stride_w, pad_w, dilation_w);
  const fc_int kk = kernel_h * kernel_w, l = oh * ow;
  const fc_int row_stride = batch_inner ? n * l : l;
  FC_PARALLEL_FOR(p, n * c, nthreads,
                  FC_NAME(unfold_plane)(x + p * h * w, h, w, kernel_h, kernel_w, stride_h,
                                        stride_w, pad_h, pad_w, dilation_h, dilation_w, oh, ow,
                                        row_stride,
                                        cols + FC_NAME(plane_offset)(p, n, c, kk, l,
                                                                     batch_inner)));
}

/* The adjoint of unfold_plane: the same rows, summed back into the plane in
 * the order (i, j, oh, ow), whatever the thread count. */
static void FC_NAME(fold_plane)(const T *src0, fc_int h, fc_int w, fc_int kh, fc_int kw,
                                fc_int sh, fc_int sw, fc_int ph, fc_int pw, fc_int dh,
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
                   fc_int kernel_w, fc_int stride_h, fc_int stride_w, fc_int pad_h,
                   fc_int pad_w, fc_int dilation_h, fc_int dilation_w, int batch_inner,
                   int nthreads, T *x) {
  const fc_int oh = fc_out_size(h, kernel_h, stride_h, pad_h, dilation_h);
  const fc_int ow = fc_out_size(w, kernel_w, stride_w, pad_w, dilation_w);
  const fc_int kk = kernel_h * kernel_w, l = oh * ow;
  const fc_int row_stride = batch_inner ? n * l : l;
  FC_PARALLEL_FOR(p, n * c, nthreads,
                  FC_NAME(fold_plane)(cols + FC_NAME(plane_offset)(p, n, c, kk, l, batch_inner),
                                      h, w, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                                      pad_w, dilation_h, dilation_w, oh, ow, row_stride,
                                      x + p * h * w));
}


/* The drivers of the direct convolution for one element type T (included by
 * conv_direct.c once per type; FC_TN(name) appends _f32 or _f64): padding,
 * the thread split and the deterministic reduction of the weight gradient.
 * The kernels they call are in conv_direct_impl.h. */

/* One image, zero-padded, rows wp apart; the slack after it is zeroed too. */
static void FC_TN(fc_pad_image)(const T *img, fc_int c, fc_int h, fc_int w, fc_int ph, fc_int pw,
                         const fc_geom *g, T *dst) {
  memset(dst, 0, (size_t)g->ximage * sizeof(T));
  for (fc_int ci = 0; ci < c; ci++)
    for (fc_int y = 0; y < h; y++)
      memcpy(dst + ci * g->plane + (y + ph) * g->wp + pw, img + (ci * h + y) * w,
             (size_t)w * sizeof(T));
}

static void FC_TN(fc_conv_image)(const T *x, fc_int ni, fc_int c, fc_int h, fc_int w,
                          const T *wpack, const T *bias, fc_int fn, fc_int kh,
                          fc_int kw, fc_int ph, fc_int pw, const fc_geom *g, int avx2,
                          int relu, T *out, int *failed) {
  T *xpad = (T *)malloc((size_t)(g->ximage + g->fn4 * g->qpad) * sizeof(T));
  if (!xpad) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
    *failed = 1;
    return;
  }
  T *grid = xpad + g->ximage;
  FC_TN(fc_pad_image)(x + ni * c * h * w, c, h, w, ph, pw, g, xpad);
#if FC_HAVE_AVX2_CLONE
  if (avx2)
    FC_TN(conv_grid_avx2)(xpad, c, g->plane, g->wp, wpack, g->fn4, kh, kw, g->qpad, grid);
  else
#endif
    FC_TN(conv_grid_baseline)(xpad, c, g->plane, g->wp, wpack, g->fn4, kh, kw, g->qpad, grid);
  (void)avx2;
  T *o = out + ni * fn * g->oh * g->ow;
  for (fc_int f = 0; f < fn; f++) {
    const T b = bias ? bias[f] : (T)0;
    for (fc_int y = 0; y < g->oh; y++) {
      const T *src = grid + f * g->qpad + y * g->wp;
      T *dst = o + (f * g->oh + y) * g->ow;
      if (relu) {
        /* v < 0, not v > 0: a NaN passes, as numpy.maximum(v, 0) lets it. */
        for (fc_int xi = 0; xi < g->ow; xi++) {
          const T v = src[xi] + b;
          dst[xi] = v < 0 ? (T)0 : v;
        }
      } else {
        for (fc_int xi = 0; xi < g->ow; xi++) dst[xi] = src[xi] + b;
      }
    }
  }
  free(xpad);
}

int FC_TN(fc_conv2d)(const T *x, fc_int n, fc_int c, fc_int h, fc_int w, const T *weight,
                  const T *bias, fc_int fn, fc_int kh, fc_int kw, fc_int ph, fc_int pw,
                  int relu, int nthreads, T *out) {
  const fc_geom g = fc_geometry(c, h, w, fn, kh, kw, ph, pw);
  /* Weights packed per block of 4 filters, tap by tap, 4 values per tap;
   * the filters past fn are zero. */
  T *wpack = (T *)calloc((size_t)(g.fn4 * g.taps), sizeof(T));
  if (!wpack) return -1;
  for (fc_int f = 0; f < fn; f++)
    for (fc_int t = 0; t < g.taps; t++)
      wpack[((f / 4) * g.taps + t) * 4 + f % 4] = weight[f * g.taps + t];
  const int avx2 = fc_use_avx2();
  int failed = 0;
  if (nthreads > 1) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads)
#endif
    for (fc_int ni = 0; ni < n; ni++) {
      if (ni == 0) fc_note_team();
      FC_TN(fc_conv_image)(x, ni, c, h, w, wpack, bias, fn, kh, kw, ph, pw, &g, avx2, relu, out, &failed);
    }
  } else {
    for (fc_int ni = 0; ni < n; ni++)
      FC_TN(fc_conv_image)(x, ni, c, h, w, wpack, bias, fn, kh, kw, ph, pw, &g, avx2, relu, out, &failed);
  }
  free(wpack);
  return failed ? -1 : 0;
}

/* dout of image ni on the output grid: rows wp apart, zero past ow and in the
 * filters past fn, so those positions add nothing to the weight gradient. */
static void FC_TN(fc_grid_dout)(const T *dout, fc_int ni, fc_int fn, const fc_geom *g,
                         T *dst) {
  memset(dst, 0, (size_t)(g->fn4 * g->qpad) * sizeof(T));
  for (fc_int f = 0; f < fn; f++)
    for (fc_int y = 0; y < g->oh; y++)
      memcpy(dst + f * g->qpad + y * g->wp, dout + ((ni * fn + f) * g->oh + y) * g->ow,
             (size_t)g->ow * sizeof(T));
}

/* The weight gradient of images [n0, n0 + m) into part (fn*c*kh*kw values). */
static void FC_TN(fc_weight_grad_chunk)(const T *x, const T *dout, fc_int n0, fc_int m,
                                 fc_int c, fc_int h, fc_int w, fc_int fn, fc_int kh, fc_int kw,
                                 fc_int ph, fc_int pw, const fc_geom *g, int avx2, T *part,
                                 int *failed) {
  const fc_int d_image = g->fn4 * g->qpad;
  T *xpad = (T *)malloc((size_t)(m * (g->ximage + d_image)) * sizeof(T));
  if (!xpad) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
    *failed = 1;
    return;
  }
  T *dgrid = xpad + m * g->ximage;
  for (fc_int i = 0; i < m; i++) {
    FC_TN(fc_pad_image)(x + (n0 + i) * c * h * w, c, h, w, ph, pw, g, xpad + i * g->ximage);
    FC_TN(fc_grid_dout)(dout, n0 + i, fn, g, dgrid + i * d_image);
  }
  for (fc_int t = 0; t < (g->fn4 / 4) * c; t++) {
#if FC_HAVE_AVX2_CLONE
    if (avx2)
      FC_TN(weight_grad_task_avx2)(xpad, m, g->ximage, g->plane, g->wp, dgrid, d_image, g->qpad,
                            (t / c) * 4, fn, t % c, c, kh, kw, part);
    else
#endif
      FC_TN(weight_grad_task_baseline)(xpad, m, g->ximage, g->plane, g->wp, dgrid, d_image, g->qpad,
                                (t / c) * 4, fn, t % c, c, kh, kw, part);
  }
  (void)avx2;
  free(xpad);
}


int FC_TN(fc_conv2d_weight_grad)(const T *x, const T *dout, fc_int n, fc_int c, fc_int h,
                              fc_int w, fc_int fn, fc_int kh, fc_int kw, fc_int ph, fc_int pw,
                              int nthreads, T *dw) {
  const fc_geom g = fc_geometry(c, h, w, fn, kh, kw, ph, pw);
  const fc_int size = fn * c * kh * kw, chunks = (n + FC_WG_CHUNK - 1) / FC_WG_CHUNK;
  const fc_int wave = chunks < FC_WG_WAVE ? chunks : FC_WG_WAVE;
  T *parts = (T *)malloc((size_t)(wave * size) * sizeof(T));
  if (!parts) return -1;
  const int avx2 = fc_use_avx2();
  int failed = 0;
  for (fc_int k = 0; k < size; k++) dw[k] = (T)0;
#define FC_WG_CHUNK_CALL(ch, slot)                                                          \
  FC_TN(fc_weight_grad_chunk)(x, dout, (ch) * FC_WG_CHUNK,                                         \
                       n - (ch) * FC_WG_CHUNK < FC_WG_CHUNK ? n - (ch) * FC_WG_CHUNK        \
                                                            : FC_WG_CHUNK,                  \
                       c, h, w, fn, kh, kw, ph, pw, &g, avx2, parts + (slot) * size, &failed)
#define FC_WG_SUM(k, count)                                                      \
  do {                                                                           \
    T s_ = dw[k];                                                            \
    for (fc_int j_ = 0; j_ < (count); j_++) s_ += parts[j_ * size + (k)];        \
    dw[k] = s_;                                                                  \
  } while (0)
  for (fc_int first = 0; first < chunks; first += wave) {
    const fc_int count = chunks - first < wave ? chunks - first : wave;
    if (nthreads > 1) {
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
      {
#pragma omp master
        fc_note_team();
#pragma omp for schedule(static)
        for (fc_int j = 0; j < count; j++) FC_WG_CHUNK_CALL(first + j, j);
#pragma omp for schedule(static)
        for (fc_int k = 0; k < size; k++) FC_WG_SUM(k, count);
      }
#endif
    } else {
      for (fc_int j = 0; j < count; j++) FC_WG_CHUNK_CALL(first + j, j);
      for (fc_int k = 0; k < size; k++) FC_WG_SUM(k, count);
    }
  }
#undef FC_WG_CHUNK_CALL
#undef FC_WG_SUM
  free(parts);
  return failed ? -1 : 0;
}


/* Direct stride-1 convolution for float32: forward (and, with the kernel
 * flipped, the input gradient) and the weight gradient, without a patch
 * matrix. Built with GCC/Clang vector extensions; where those are missing
 * (MSVC) fc_conv_available() is 0 and fastconv uses the patch-matrix path.
 *
 * On x86 the kernels are compiled twice, for the x86-64 baseline and for
 * AVX2+FMA, and the faster one is picked at run time, so one wheel runs
 * everywhere and still uses the wide units where they exist. */
#include "common.h"

#include <stdlib.h>

#if defined(__GNUC__) || defined(__clang__)
#define FC_HAVE_DIRECT 1
#endif

#if FC_HAVE_DIRECT && (defined(__x86_64__) || defined(__i386__))
#define FC_HAVE_AVX2_CLONE 1
#endif

static int fc_force_baseline = 0;

#if FC_HAVE_DIRECT

typedef float fc_v8 __attribute__((vector_size(32)));
/* The same vector at any float alignment: loads and stores of q-offset runs. */
typedef float fc_v8u __attribute__((vector_size(32), aligned(4), may_alias));
#define fc_load(p) (*(const fc_v8u *)(p))
#define fc_store(p, v) (*(fc_v8u *)(p) = (v))
#define fc_splat(s) ((fc_v8){(s), (s), (s), (s), (s), (s), (s), (s)})

#define FC_TARGET
#define FC_ISA(name) name##_baseline
#include "conv_direct_impl.h"
#undef FC_TARGET
#undef FC_ISA

#if FC_HAVE_AVX2_CLONE
#define FC_TARGET __attribute__((target("avx2,fma")))
#define FC_ISA(name) name##_avx2
#include "conv_direct_impl.h"
#undef FC_TARGET
#undef FC_ISA
#endif

static int fc_use_avx2(void) {
#if FC_HAVE_AVX2_CLONE
  if (fc_force_baseline) return 0;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}

#define FC_ROUND_UP(a, b) (((a) + (b) - 1) / (b) * (b))

/* The geometry both kernels share: padded plane, output grid, slack. */
typedef struct {
  fc_int hp, wp, oh, ow, plane, qpad, ximage, fn4, taps;
} fc_geom;

static fc_geom fc_geometry(fc_int c, fc_int h, fc_int w, fc_int fn, fc_int kh, fc_int kw,
                           fc_int ph, fc_int pw) {
  fc_geom g;
  g.hp = h + 2 * ph;
  g.wp = w + 2 * pw;
  g.oh = fc_out_size(h, kh, 1, ph, 1);
  g.ow = fc_out_size(w, kw, 1, pw, 1);
  g.plane = g.hp * g.wp;
  g.qpad = FC_ROUND_UP(g.oh * g.wp, 24);
  /* Positions past the last output row and the 3-wide tap blocks of the
   * weight gradient read beyond the last plane: zeroed slack covers them. */
  g.ximage = c * g.plane + g.qpad + kh * g.wp + kw + 32;
  g.fn4 = FC_ROUND_UP(fn, 4);
  g.taps = c * kh * kw;
  return g;
}

/* One image, zero-padded, rows wp apart; the slack after it is zeroed too. */
static void fc_pad_image(const float *img, fc_int c, fc_int h, fc_int w, fc_int ph, fc_int pw,
                         const fc_geom *g, float *dst) {
  memset(dst, 0, (size_t)g->ximage * sizeof(float));
  for (fc_int ci = 0; ci < c; ci++)
    for (fc_int y = 0; y < h; y++)
      memcpy(dst + ci * g->plane + (y + ph) * g->wp + pw, img + (ci * h + y) * w,
             (size_t)w * sizeof(float));
}

static void fc_conv_image(const float *x, fc_int ni, fc_int c, fc_int h, fc_int w,
                          const float *wpack, const float *bias, fc_int fn, fc_int kh,
                          fc_int kw, fc_int ph, fc_int pw, const fc_geom *g, int avx2,
                          float *out, int *failed) {
  float *xpad = (float *)malloc((size_t)(g->ximage + g->fn4 * g->qpad) * sizeof(float));
  if (!xpad) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
    *failed = 1;
    return;
  }
  float *grid = xpad + g->ximage;
  fc_pad_image(x + ni * c * h * w, c, h, w, ph, pw, g, xpad);
#if FC_HAVE_AVX2_CLONE
  if (avx2)
    conv_grid_avx2(xpad, c, g->plane, g->wp, wpack, g->fn4, kh, kw, g->qpad, grid);
  else
#endif
    conv_grid_baseline(xpad, c, g->plane, g->wp, wpack, g->fn4, kh, kw, g->qpad, grid);
  (void)avx2;
  float *o = out + ni * fn * g->oh * g->ow;
  for (fc_int f = 0; f < fn; f++) {
    const float b = bias ? bias[f] : 0.0f;
    for (fc_int y = 0; y < g->oh; y++) {
      const float *src = grid + f * g->qpad + y * g->wp;
      float *dst = o + (f * g->oh + y) * g->ow;
      for (fc_int xi = 0; xi < g->ow; xi++) dst[xi] = src[xi] + b;
    }
  }
  free(xpad);
}

int fc_conv2d_f32(const float *x, fc_int n, fc_int c, fc_int h, fc_int w, const float *weight,
                  const float *bias, fc_int fn, fc_int kh, fc_int kw, fc_int ph, fc_int pw,
                  int nthreads, float *out) {
  const fc_geom g = fc_geometry(c, h, w, fn, kh, kw, ph, pw);
  /* Weights packed per block of 4 filters, tap by tap, 4 values per tap;
   * the filters past fn are zero. */
  float *wpack = (float *)calloc((size_t)(g.fn4 * g.taps), sizeof(float));
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
      fc_conv_image(x, ni, c, h, w, wpack, bias, fn, kh, kw, ph, pw, &g, avx2, out, &failed);
    }
  } else {
    for (fc_int ni = 0; ni < n; ni++)
      fc_conv_image(x, ni, c, h, w, wpack, bias, fn, kh, kw, ph, pw, &g, avx2, out, &failed);
  }
  free(wpack);
  return failed ? -1 : 0;
}

/* dout of image ni on the output grid: rows wp apart, zero past ow and in the
 * filters past fn, so those positions add nothing to the weight gradient. */
static void fc_grid_dout(const float *dout, fc_int ni, fc_int fn, const fc_geom *g,
                         float *dst) {
  memset(dst, 0, (size_t)(g->fn4 * g->qpad) * sizeof(float));
  for (fc_int f = 0; f < fn; f++)
    for (fc_int y = 0; y < g->oh; y++)
      memcpy(dst + f * g->qpad + y * g->wp, dout + ((ni * fn + f) * g->oh + y) * g->ow,
             (size_t)g->ow * sizeof(float));
}

/* The weight gradient of images [n0, n0 + m) into part (fn*c*kh*kw values). */
static void fc_weight_grad_chunk(const float *x, const float *dout, fc_int n0, fc_int m,
                                 fc_int c, fc_int h, fc_int w, fc_int fn, fc_int kh, fc_int kw,
                                 fc_int ph, fc_int pw, const fc_geom *g, int avx2, float *part,
                                 int *failed) {
  const fc_int d_image = g->fn4 * g->qpad;
  float *xpad = (float *)malloc((size_t)(m * (g->ximage + d_image)) * sizeof(float));
  if (!xpad) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
    *failed = 1;
    return;
  }
  float *dgrid = xpad + m * g->ximage;
  for (fc_int i = 0; i < m; i++) {
    fc_pad_image(x + (n0 + i) * c * h * w, c, h, w, ph, pw, g, xpad + i * g->ximage);
    fc_grid_dout(dout, n0 + i, fn, g, dgrid + i * d_image);
  }
  for (fc_int t = 0; t < (g->fn4 / 4) * c; t++) {
#if FC_HAVE_AVX2_CLONE
    if (avx2)
      weight_grad_task_avx2(xpad, m, g->ximage, g->plane, g->wp, dgrid, d_image, g->qpad,
                            (t / c) * 4, fn, t % c, c, kh, kw, part);
    else
#endif
      weight_grad_task_baseline(xpad, m, g->ximage, g->plane, g->wp, dgrid, d_image, g->qpad,
                                (t / c) * 4, fn, t % c, c, kh, kw, part);
  }
  (void)avx2;
  free(xpad);
}

/* Images go in fixed chunks of FC_WG_CHUNK, whatever the thread count; each
 * chunk's partial gradient is added into dw in chunk order, so every thread
 * count gives the same bits. A chunk's padded images stay in cache while all
 * filters and channels are done with them. The chunks are done FC_WG_WAVE at
 * a time, which bounds the partials' memory however large the batch. */
#define FC_WG_CHUNK 4
#define FC_WG_WAVE 64

int fc_conv2d_weight_grad_f32(const float *x, const float *dout, fc_int n, fc_int c, fc_int h,
                              fc_int w, fc_int fn, fc_int kh, fc_int kw, fc_int ph, fc_int pw,
                              int nthreads, float *dw) {
  const fc_geom g = fc_geometry(c, h, w, fn, kh, kw, ph, pw);
  const fc_int size = fn * c * kh * kw, chunks = (n + FC_WG_CHUNK - 1) / FC_WG_CHUNK;
  const fc_int wave = chunks < FC_WG_WAVE ? chunks : FC_WG_WAVE;
  float *parts = (float *)malloc((size_t)(wave * size) * sizeof(float));
  if (!parts) return -1;
  const int avx2 = fc_use_avx2();
  int failed = 0;
  for (fc_int k = 0; k < size; k++) dw[k] = 0.0f;
#define FC_WG_CHUNK_CALL(ch, slot)                                                          \
  fc_weight_grad_chunk(x, dout, (ch) * FC_WG_CHUNK,                                         \
                       n - (ch) * FC_WG_CHUNK < FC_WG_CHUNK ? n - (ch) * FC_WG_CHUNK        \
                                                            : FC_WG_CHUNK,                  \
                       c, h, w, fn, kh, kw, ph, pw, &g, avx2, parts + (slot) * size, &failed)
#define FC_WG_SUM(k, count)                                                      \
  do {                                                                           \
    float s_ = dw[k];                                                            \
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

int fc_conv_available(void) { return 1; }

#else /* no vector extensions */

int fc_conv2d_f32(const float *x, fc_int n, fc_int c, fc_int h, fc_int w, const float *weight,
                  const float *bias, fc_int fn, fc_int kh, fc_int kw, fc_int ph, fc_int pw,
                  int nthreads, float *out) {
  (void)x; (void)n; (void)c; (void)h; (void)w; (void)weight; (void)bias; (void)fn;
  (void)kh; (void)kw; (void)ph; (void)pw; (void)nthreads; (void)out;
  return -2;
}

int fc_conv2d_weight_grad_f32(const float *x, const float *dout, fc_int n, fc_int c, fc_int h,
                              fc_int w, fc_int fn, fc_int kh, fc_int kw, fc_int ph, fc_int pw,
                              int nthreads, float *dw) {
  (void)x; (void)dout; (void)n; (void)c; (void)h; (void)w; (void)fn; (void)kh; (void)kw;
  (void)ph; (void)pw; (void)nthreads; (void)dw;
  return -2;
}

int fc_conv_available(void) { return 0; }

#endif

/* Which instruction set the direct kernels use: "avx2" or "baseline";
 * force_baseline lets the tests run both on one machine. */
const char *fc_conv_isa(void) {
#if FC_HAVE_DIRECT
  return fc_use_avx2() ? "avx2" : "baseline";
#else
  return "none";
#endif
}

void fc_conv_force_baseline(int on) { fc_force_baseline = on != 0; }

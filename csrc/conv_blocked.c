/* Channel-blocked stride-1 convolution, float32 (API in conv_blocked.h):
 * layout conversions, weight packing, the planner that picks register tiles,
 * the thread split and the fixed-order reduction of the weight gradient. The
 * kernels are in conv_blocked_impl.h, built per instruction set by
 * conv_blocked_isas.h; these drivers are built for the baseline and call
 * them through a table, so OpenMP never outlines a target-specific body. */
#include "common.h"
#include "conv_blocked.h"

/* The kernels need GCC/Clang vector extensions; without them (MSVC) the
 * layout conversions, packing and size queries still build, the three
 * kernels are stubs and fc_blocked_available() is 0, as for conv_direct.c. */
#if defined(__GNUC__) || defined(__clang__)
#define FC_BK_HAVE 1
#else
#define FC_BK_HAVE 0
#endif

#if FC_BK_HAVE && (defined(__x86_64__) || defined(__i386__))
#define FC_BK_X86 1
#include <immintrin.h>
#else
#define FC_BK_X86 0
#endif

/* FASTCONV_ISA: the highest instruction set the blocked kernels may use (0
 * baseline, 1 AVX2, 2 AVX-512); set with the direct kernels' cap by the
 * binding of fc_conv_cap_isa, so both families obey one setting. */
static int fc_bk_cap = 1 << 30;

#define T float
#define FC_TN(name) name##_f32

#if FC_BK_HAVE
typedef float fc_bk_v8f __attribute__((vector_size(32)));
typedef int32_t fc_bk_v8i __attribute__((vector_size(32)));
typedef float fc_bk_v8fu __attribute__((vector_size(32), aligned(4), may_alias));

/* What a forward task reads: x with ncb blocks of cbi channels (cbi = 1:
 * NCHW), the packed weights, the bias padded to nfb blocks (or NULL), and the
 * planned tile: nb output blocks x at most p pixels. */
typedef struct {
  const T *x, *wp, *bias;
  T *out;
  fc_int h, w, cbi, ncb, nfb, kh, kw, ph, pw, oh, ow, nb, p;
  int relu;
} FC_TN(fc_bk_fwd);

/* What a weight-gradient task reads; cig input channels a tile (blocked
 * input) or tt taps a tile (NCHW input). */
typedef struct {
  const T *x, *dout;
  fc_int h, w, cbi, ncb, nfb, kh, kw, ph, pw, oh, ow, cig, tt;
} FC_TN(fc_bk_dw);

#include "conv_blocked_isas.h"

/* One instruction set's kernels and the tile sizes it has. */
typedef struct {
  void (*fwd_task)(const FC_TN(fc_bk_fwd) *, fc_int, fc_int, fc_int, T *);
  void (*dw_task)(const FC_TN(fc_bk_dw) *, fc_int, fc_int, fc_int, int, fc_int, T *, T *,
                  T *);
  int pmax[4];    /* widest forward tile for NB = 1..4 output blocks */
  int acc_max;    /* accumulators the register file holds */
  int dw_has[4][17]; /* dw_has[NB-1][CIG]: that weight-gradient tile exists */
  int ttmax;      /* widest tap tile on NCHW input */
} FC_TN(fc_bk_ops);

static FC_TN(fc_bk_ops) FC_TN(fc_bk_ops_table)[3];
static int fc_bk_ready = 0;

#define FC_BK_FILL(ops, isa)                                                               \
  do {                                                                                     \
    (ops).fwd_task = fwd_task_##isa##_f32;                                                 \
    (ops).dw_task = dw_task_##isa##_f32;                                                   \
    for (int nb_ = 0; nb_ < 4; nb_++) {                                                    \
      (ops).pmax[nb_] = 0;                                                                 \
      for (int p_ = 0; p_ < 14; p_++)                                                      \
        if (fwd_table_##isa##_f32[1][nb_][p_]) (ops).pmax[nb_] = p_ + 1;                   \
      for (int c_ = 1; c_ <= 16; c_++)                                                     \
        (ops).dw_has[nb_][c_] = dw_table_##isa##_f32[nb_][c_ - 1] != NULL;                 \
    }                                                                                      \
    (ops).ttmax = 0;                                                                       \
    for (int t_ = 0; t_ < 28; t_++)                                                        \
      if (dw1_table_##isa##_f32[t_]) (ops).ttmax = t_ + 1;                                 \
    (ops).acc_max = (ops).pmax[0];                                                         \
  } while (0)

static const FC_TN(fc_bk_ops) *FC_TN(fc_bk_ops_for)(int isa) {
  if (!fc_bk_ready) {
    /* Idempotent: racing first callers write the same values. */
    FC_BK_FILL(FC_TN(fc_bk_ops_table)[FC_ISA_BASELINE], baseline);
#if FC_BK_X86
    FC_BK_FILL(FC_TN(fc_bk_ops_table)[FC_ISA_AVX2], avx2);
    FC_BK_FILL(FC_TN(fc_bk_ops_table)[FC_ISA_AVX512], avx512);
#endif
    fc_bk_ready = 1;
  }
  return &FC_TN(fc_bk_ops_table)[isa];
}
#endif /* FC_BK_HAVE */

int fc_blocked_available(void) { return FC_BK_HAVE; }

void fc_blocked_cap_isa(int level) { fc_bk_cap = level; }

int fc_blocked_isa(void) { return fc_blocked_isa_best(fc_bk_cap); }

int fc_blocked_isa_supported(int isa) {
  if (isa == FC_ISA_BASELINE) return 1;
#if FC_BK_X86
  __builtin_cpu_init();
  if (isa == FC_ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == FC_ISA_AVX512)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
#endif
  return 0;
}

int fc_blocked_isa_best(int cap) {
  for (int isa = FC_ISA_AVX512; isa > FC_ISA_BASELINE; isa--)
    if (isa <= cap && fc_blocked_isa_supported(isa)) return isa;
  return FC_ISA_BASELINE;
}

fc_int fc_blocked_cb(int isa) { return isa == FC_ISA_AVX512 ? 16 : 8; }

const char *fc_blocked_isa_name(int isa) {
  return isa == FC_ISA_AVX512 ? "avx512" : isa == FC_ISA_AVX2 ? "avx2" : "baseline";
}

#define FC_BK_CEIL(a, b) (((a) + (b) - 1) / (b))
#define FC_BK_MIN(a, b) ((a) < (b) ? (a) : (b))

#if FC_BK_HAVE
/* Which scratch slot the calling thread owns; no OpenMP call when serial. */
static int fc_bk_slot(int nthreads) {
#ifdef _OPENMP
  if (nthreads > 1) return omp_get_thread_num();
#endif
  (void)nthreads;
  return 0;
}
#endif

/* ---------------------------------------------------------------- layouts */

/* One (image, channel block) of a conversion; to_blocked picks the direction. */
static void FC_TN(fc_bk_convert)(const T *x, fc_int t, fc_int c, fc_int hw, fc_int cb,
                                 int to_blocked, T *xb) {
  const fc_int ncb = FC_BK_CEIL(c, cb), ni = t / ncb, c0 = (t % ncb) * cb;
  const fc_int m = FC_BK_MIN(cb, c - c0);
  T *blk = xb + t * hw * cb, *plane = (T *)x + (ni * c + c0) * hw;
  if (to_blocked) {
    if (m < cb) memset(blk, 0, (size_t)(hw * cb) * sizeof(T));
    /* Channel-major reads, interleaved writes: each source plane streams. */
    for (fc_int k = 0; k < m; k++)
      for (fc_int q = 0; q < hw; q++) blk[q * cb + k] = plane[k * hw + q];
  } else {
    for (fc_int k = 0; k < m; k++)
      for (fc_int q = 0; q < hw; q++) plane[k * hw + q] = blk[q * cb + k];
  }
}

void FC_TN(fc_blocked_from_nchw)(const T *x, fc_int n, fc_int c, fc_int h, fc_int w,
                                 fc_int cb, int nthreads, T *xb) {
  FC_PARALLEL_FOR(t, n * FC_BK_CEIL(c, cb), nthreads,
                  FC_TN(fc_bk_convert)(x, t, c, h * w, cb, 1, xb));
}

void FC_TN(fc_blocked_to_nchw)(const T *xb, fc_int n, fc_int c, fc_int h, fc_int w,
                               fc_int cb, int nthreads, T *x) {
  FC_PARALLEL_FOR(t, n * FC_BK_CEIL(c, cb), nthreads,
                  FC_TN(fc_bk_convert)(x, t, c, h * w, cb, 0, (T *)xb));
}

fc_int fc_blocked_packed_size(fc_int fn, fc_int c, fc_int kh, fc_int kw, fc_int cbi,
                              fc_int cb) {
  return FC_BK_CEIL(fn, cb) * cb * FC_BK_CEIL(c, cbi) * cbi * kh * kw;
}

/* wp[fb][cblk][i][j][ci][fo] = weight[fb*cb+fo][cblk*cbi+ci][i][j]; flip and
 * transposed pick the input gradient's variant. */
static void FC_TN(fc_bk_pack)(const T *weight, fc_int fn, fc_int c, fc_int kh, fc_int kw,
                              fc_int cbi, fc_int cb, int flip, T *wp) {
  /* For the input gradient the roles swap: "output" channels are c, "input" fn. */
  const fc_int fo_n = flip ? c : fn, fi_n = flip ? fn : c;
  const fc_int ncb = FC_BK_CEIL(fi_n, cbi);
  memset(wp, 0, (size_t)fc_blocked_packed_size(fo_n, fi_n, kh, kw, cbi, cb) * sizeof(T));
  for (fc_int fo = 0; fo < fo_n; fo++)
    for (fc_int fi = 0; fi < fi_n; fi++)
      for (fc_int i = 0; i < kh; i++)
        for (fc_int j = 0; j < kw; j++) {
          const T v = flip ? weight[((fi * c + fo) * kh + kh - 1 - i) * kw + kw - 1 - j]
                           : weight[((fo * c + fi) * kh + i) * kw + j];
          wp[(((((fo / cb) * ncb + fi / cbi) * kh + i) * kw + j) * cbi + fi % cbi) * cb +
             fo % cb] = v;
        }
}

void FC_TN(fc_blocked_pack_weight)(const T *weight, fc_int fn, fc_int c, fc_int kh,
                                   fc_int kw, fc_int cbi, fc_int cb, T *wp) {
  FC_TN(fc_bk_pack)(weight, fn, c, kh, kw, cbi, cb, 0, wp);
}

void FC_TN(fc_blocked_pack_weight_grad_input)(const T *weight, fc_int fn, fc_int c,
                                              fc_int kh, fc_int kw, fc_int cb, T *wp) {
  FC_TN(fc_bk_pack)(weight, fn, c, kh, kw, cb, cb, 1, wp);
}

/* ---------------------------------------------------------------- forward */

#if FC_BK_HAVE
/* The forward tile: nb output blocks x at most p pixels. Most accumulators
 * first (they hide the FMA latency and amortise the loads); among equals,
 * fewer loads per FMA (p + nb smaller). Groups are equal-sized. */
static void fc_bk_plan_fwd(const FC_TN(fc_bk_ops) *ops, fc_int nfb, fc_int ow, fc_int *nb,
                           fc_int *p) {
  int best = -1, bload = 1 << 30;
  for (int g = 1; g <= 4; g++) {
    if (!ops->pmax[g - 1]) continue;
    const fc_int groups = FC_BK_CEIL(nfb, g), gnb = FC_BK_CEIL(nfb, groups);
    if (gnb != g) continue;
    const fc_int tiles = FC_BK_CEIL(ow, ops->pmax[g - 1]), tp = FC_BK_CEIL(ow, tiles);
    const int accs = (int)(g * tp), loads = (int)(g + tp);
    if (accs > best || (accs == best && loads < bload)) {
      best = accs, bload = loads;
      *nb = g, *p = tp;
    }
  }
}

/* Rows per task: whole images when the batch alone keeps every thread busy. */
static fc_int fc_bk_rows_per_task(fc_int n, fc_int oh, int nthreads) {
  const fc_int want = FC_BK_CEIL(4 * (fc_int)nthreads, n);
  return FC_BK_CEIL(oh, FC_BK_MIN(oh, want > 1 ? want : 1));
}
#endif

fc_int fc_conv2d_blocked_workspace(fc_int n, fc_int c, fc_int h, fc_int w, fc_int cbi,
                                   fc_int fn, fc_int kh, fc_int kw, fc_int pad_h,
                                   fc_int pad_w, int isa, int nthreads) {
  (void)n; (void)kh; (void)kw; (void)pad_h;
  const fc_int cb = fc_blocked_cb(isa), th = nthreads > 1 ? nthreads : 1;
  return FC_BK_CEIL(fn, cb) * cb + th * FC_BK_CEIL(c, cbi) * cbi * h * (w + 2 * pad_w);
}

#if FC_BK_HAVE
void FC_TN(fc_conv2d_blocked)(const T *x, fc_int n, fc_int c, fc_int h, fc_int w, fc_int cbi,
                              const T *wp, const T *bias, fc_int fn, fc_int kh, fc_int kw,
                              fc_int pad_h, fc_int pad_w, int relu, int isa, int nthreads,
                              T *ws, T *out) {
  const FC_TN(fc_bk_ops) *ops = FC_TN(fc_bk_ops_for)(isa);
  const fc_int cb = fc_blocked_cb(isa);
  FC_TN(fc_bk_fwd) a;
  a.x = x, a.wp = wp, a.out = out, a.h = h, a.w = w, a.cbi = cbi;
  a.ncb = FC_BK_CEIL(c, cbi), a.nfb = FC_BK_CEIL(fn, cb), a.kh = kh, a.kw = kw;
  a.ph = pad_h, a.pw = pad_w, a.oh = fc_out_size(h, kh, 1, pad_h, 1);
  a.ow = fc_out_size(w, kw, 1, pad_w, 1), a.relu = relu;
  fc_bk_plan_fwd(ops, a.nfb, a.ow, &a.nb, &a.p);
  T *bpad = ws;
  a.bias = NULL;
  if (bias) {
    memset(bpad, 0, (size_t)(a.nfb * cb) * sizeof(T));
    memcpy(bpad, bias, (size_t)fn * sizeof(T));
    a.bias = bpad;
  }
  T *bufs = ws + a.nfb * cb;
  const fc_int buf = a.ncb * cbi * h * (w + 2 * pad_w);
  const fc_int rb = fc_bk_rows_per_task(n, a.oh, nthreads), nrb = FC_BK_CEIL(a.oh, rb);
  FC_PARALLEL_FOR(t, n * nrb, nthreads,
                  ops->fwd_task(&a, t / nrb, (t % nrb) * rb,
                                FC_BK_MIN(a.oh, (t % nrb) * rb + rb),
                                bufs + fc_bk_slot(nthreads) * buf));
}
#endif

fc_int fc_conv2d_blocked_grad_input_workspace(fc_int n, fc_int c, fc_int h, fc_int w,
                                              fc_int fn, fc_int kh, fc_int kw,
                                              fc_int pad_h, fc_int pad_w, int isa,
                                              int nthreads) {
  const fc_int cb = fc_blocked_cb(isa);
  const fc_int oh = fc_out_size(h, kh, 1, pad_h, 1), ow = fc_out_size(w, kw, 1, pad_w, 1);
  return fc_conv2d_blocked_workspace(n, fn, oh, ow, cb, c, kh, kw, kh - 1 - pad_h,
                                     kw - 1 - pad_w, isa, nthreads);
}

void FC_TN(fc_conv2d_blocked_grad_input)(const T *dout, fc_int n, fc_int c, fc_int h,
                                         fc_int w, const T *wpt, fc_int fn, fc_int kh,
                                         fc_int kw, fc_int pad_h, fc_int pad_w, int isa,
                                         int nthreads, T *ws, T *dx) {
  const fc_int oh = fc_out_size(h, kh, 1, pad_h, 1), ow = fc_out_size(w, kw, 1, pad_w, 1);
  FC_TN(fc_conv2d_blocked)(dout, n, fn, oh, ow, fc_blocked_cb(isa), wpt, NULL, c, kh, kw,
                           kh - 1 - pad_h, kw - 1 - pad_w, 0, isa, nthreads, ws, dx);
}

/* -------------------------------------------------------- weight gradient */

#define FC_BK_CHUNKS 8

static fc_int fc_bk_chunks(fc_int n) { return FC_BK_MIN(n, FC_BK_CHUNKS); }

#if FC_BK_HAVE
/* Blocked input: nb output blocks x cig input channels (cig divides the
 * block), the most accumulators that fit, then the fewest loads per FMA. */
static void fc_bk_plan_dw(const FC_TN(fc_bk_ops) *ops, fc_int nfb, fc_int cb, fc_int *nb,
                          fc_int *cig) {
  int best = -1, bload = 1 << 30;
  for (int g = 1; g <= 4; g++) {
    const fc_int groups = FC_BK_CEIL(nfb, g);
    if (FC_BK_CEIL(nfb, groups) != g) continue;
    for (int ci = 1; ci <= cb; ci++) {
      if (cb % ci || !ops->dw_has[g - 1][ci]) continue;
      const int accs = g * ci, loads = g + ci;
      if (accs > best || (accs == best && loads < bload)) {
        best = accs, bload = loads;
        *nb = g, *cig = ci;
      }
    }
  }
}
#endif

fc_int fc_conv2d_blocked_weight_grad_workspace(fc_int n, fc_int c, fc_int h, fc_int w,
                                               fc_int cbi, fc_int fn, fc_int kh,
                                               fc_int kw, fc_int pad_h, fc_int pad_w,
                                               int isa, int nthreads) {
  const fc_int cb = fc_blocked_cb(isa), th = nthreads > 1 ? nthreads : 1;
  const fc_int plane = cbi == 1 ? (h + 2 * pad_h) * (w + 2 * pad_w) : 0;
  return fc_bk_chunks(n) * (fc_blocked_packed_size(fn, c, kh, kw, cbi, cb) +
                           FC_BK_CEIL(fn, cb) * cb) +
         th * plane;
}

#if FC_BK_HAVE
/* dw[f][.][.][.]: the chunks' partials (packed) summed in chunk order. */
static void FC_TN(fc_bk_reduce)(const T *parts, fc_int chunks, fc_int psize, fc_int f,
                                fc_int c, fc_int taps, fc_int ncb, fc_int cbi, fc_int cb,
                                T *dw) {
  (void)ncb;
  for (fc_int ci = 0; ci < c; ci++)
    for (fc_int t = 0; t < taps; t++) {
      const fc_int at =
          ((((f / cb) * ncb + ci / cbi) * taps + t) * cbi + ci % cbi) * cb + f % cb;
      T s = parts[at];
      for (fc_int k = 1; k < chunks; k++) s += parts[k * psize + at];
      dw[(f * c + ci) * taps + t] = s;
    }
}

/* db: the chunks' partial sums added in chunk order. */
static void FC_TN(fc_bk_bias_reduce)(const T *parts, fc_int chunks, fc_int stride, fc_int fn,
                                     T *db) {
  for (fc_int f = 0; f < fn; f++) {
    T s = parts[f];
    for (fc_int k = 1; k < chunks; k++) s += parts[k * stride + f];
    db[f] = s;
  }
}

void FC_TN(fc_conv2d_blocked_weight_grad)(const T *x, const T *dout, fc_int n, fc_int c,
                                          fc_int h, fc_int w, fc_int cbi, fc_int fn,
                                          fc_int kh, fc_int kw, fc_int pad_h, fc_int pad_w,
                                          int isa, int nthreads, T *ws, T *dw, T *db) {
  const FC_TN(fc_bk_ops) *ops = FC_TN(fc_bk_ops_for)(isa);
  const fc_int cb = fc_blocked_cb(isa);
  FC_TN(fc_bk_dw) a;
  a.x = x, a.dout = dout, a.h = h, a.w = w, a.cbi = cbi, a.ncb = FC_BK_CEIL(c, cbi);
  a.nfb = FC_BK_CEIL(fn, cb), a.kh = kh, a.kw = kw, a.ph = pad_h, a.pw = pad_w;
  a.oh = fc_out_size(h, kh, 1, pad_h, 1), a.ow = fc_out_size(w, kw, 1, pad_w, 1);
  fc_int nb = 1;
  a.cig = 1, a.tt = 1;
  if (cbi == 1) {
    /* Taps in equal groups; the output blocks go one at a time. */
    const fc_int taps = kh * kw, groups = FC_BK_CEIL(taps, ops->ttmax);
    a.tt = FC_BK_CEIL(taps, groups);
    nb = a.nfb;
  } else {
    fc_bk_plan_dw(ops, a.nfb, cb, &nb, &a.cig);
  }
  const fc_int chunks = fc_bk_chunks(n), psize = fc_blocked_packed_size(fn, c, kh, kw, cbi, cb);
  const fc_int groups = FC_BK_CEIL(a.nfb, nb), per_chunk = groups * a.ncb;
  T *dbparts = ws + chunks * psize, *bufs = dbparts + chunks * a.nfb * cb;
  const fc_int plane = cbi == 1 ? (h + 2 * pad_h) * (w + 2 * pad_w) : 0;
  /* Chunk k holds images [k*n/chunks, (k+1)*n/chunks): bounds set by n alone. */
  FC_PARALLEL_FOR(t, chunks * per_chunk, nthreads,
                  ops->dw_task(&a, (t / per_chunk) * n / chunks,
                               (t / per_chunk + 1) * n / chunks,
                               ((t % per_chunk) / a.ncb) * nb,
                               (int)FC_BK_MIN(nb, a.nfb - ((t % per_chunk) / a.ncb) * nb),
                               t % a.ncb, ws + (t / per_chunk) * psize,
                               db ? dbparts + (t / per_chunk) * a.nfb * cb : NULL,
                               bufs + fc_bk_slot(nthreads) * plane));
  FC_PARALLEL_FOR(f, fn, nthreads,
                  FC_TN(fc_bk_reduce)(ws, chunks, psize, f, c, kh * kw, a.ncb, cbi, cb, dw));
  if (db) FC_TN(fc_bk_bias_reduce)(dbparts, chunks, a.nfb * cb, fn, db);
}

#else /* no vector extensions: fc_blocked_available() is 0 and nothing calls these */

void FC_TN(fc_conv2d_blocked)(const T *x, fc_int n, fc_int c, fc_int h, fc_int w, fc_int cbi,
                              const T *wp, const T *bias, fc_int fn, fc_int kh, fc_int kw,
                              fc_int pad_h, fc_int pad_w, int relu, int isa, int nthreads,
                              T *ws, T *out) {
  (void)x; (void)n; (void)c; (void)h; (void)w; (void)cbi; (void)wp; (void)bias; (void)fn;
  (void)kh; (void)kw; (void)pad_h; (void)pad_w; (void)relu; (void)isa; (void)nthreads;
  (void)ws; (void)out;
}

void FC_TN(fc_conv2d_blocked_weight_grad)(const T *x, const T *dout, fc_int n, fc_int c,
                                          fc_int h, fc_int w, fc_int cbi, fc_int fn,
                                          fc_int kh, fc_int kw, fc_int pad_h, fc_int pad_w,
                                          int isa, int nthreads, T *ws, T *dw, T *db) {
  (void)x; (void)dout; (void)n; (void)c; (void)h; (void)w; (void)cbi; (void)fn; (void)kh;
  (void)kw; (void)pad_h; (void)pad_w; (void)isa; (void)nthreads; (void)ws; (void)dw;
  (void)db;
}

#endif

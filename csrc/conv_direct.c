/* Direct stride-1 convolution for float32 and float64: forward (and, with the kernel
 * flipped, the input gradient) and the weight gradient, without a patch
 * matrix. Built with GCC/Clang vector extensions; where those are missing
 * (MSVC) fc_conv_available() is 0 and fastconv uses the patch-matrix path.
 *
 * On x86 the kernels are compiled twice, for the x86-64 baseline and for
 * AVX2+FMA, and the faster one is picked at run time, so one wheel runs
 * everywhere and still uses the wide units where they exist. */
#include "common.h"
#include "testing.h"

#include <stdlib.h>

#if defined(__GNUC__) || defined(__clang__)
#define FC_HAVE_DIRECT 1
#endif

#if FC_HAVE_DIRECT && (defined(__x86_64__) || defined(__i386__))
#define FC_HAVE_AVX2_CLONE 1
#endif

static int fc_force_baseline = 0;
/* FASTCONV_ISA: the highest instruction set the user allows (0 baseline,
 * 1 AVX2); the tests' force_baseline comes on top of it. */
static int fc_isa_cap = 1 << 30;

#if FC_HAVE_DIRECT

typedef float fc_v8f __attribute__((vector_size(32)));
typedef double fc_v4d __attribute__((vector_size(32)));
/* The same vectors at any element alignment: loads and stores of q-offset runs. */
typedef float fc_v8fu __attribute__((vector_size(32), aligned(4), may_alias));
typedef double fc_v4du __attribute__((vector_size(32), aligned(8), may_alias));

/* Each kernel is built for every (element type, instruction set) pair:
 * conv_direct_isas.h includes the kernels once per instruction set, with
 * FC_SFX naming the element type. */
#define T float
#define V fc_v8f
#define VL 8
#define VLOAD(p) (*(const fc_v8fu *)(p))
#define VSTORE(p, v) (*(fc_v8fu *)(p) = (v))
#define VSPLAT(s) ((fc_v8f){(s), (s), (s), (s), (s), (s), (s), (s)})
#define FC_BASELINE(name) name##_baseline_f32
#define FC_AVX2(name) name##_avx2_f32
#include "conv_direct_isas.h"

#define T double
#define V fc_v4d
#define VL 4
#define VLOAD(p) (*(const fc_v4du *)(p))
#define VSTORE(p, v) (*(fc_v4du *)(p) = (v))
#define VSPLAT(s) ((fc_v4d){(s), (s), (s), (s)})
#define FC_BASELINE(name) name##_baseline_f64
#define FC_AVX2(name) name##_avx2_f64
#include "conv_direct_isas.h"

static int fc_use_avx2(void) {
#if FC_HAVE_AVX2_CLONE
  if (fc_force_baseline || fc_isa_cap < 1) return 0;
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

/* Images go in fixed chunks of FC_WG_CHUNK, whatever the thread count; each
 * chunk's partial gradient is added into dw in chunk order, so every thread
 * count gives the same bits. A chunk's padded images stay in cache while all
 * filters and channels are done with them. The chunks are done FC_WG_WAVE at
 * a time, which bounds the partials' memory however large the batch. */
#define FC_WG_CHUNK 4
#define FC_WG_WAVE 64

#define T float
#define FC_TN(name) name##_f32
#include "conv_direct_driver.h"
#undef T
#undef FC_TN

#define T double
#define FC_TN(name) name##_f64
#include "conv_direct_driver.h"
#undef T
#undef FC_TN

int fc_conv_available(void) { return 1; }

#else /* no vector extensions */

#define FC_NO_DIRECT(T, sfx)                                                                  \
  int fc_conv2d_##sfx(const T *x, fc_int n, fc_int c, fc_int h, fc_int w, const T *weight,    \
                      const T *bias, fc_int fn, fc_int kh, fc_int kw, fc_int ph, fc_int pw,   \
                      int relu, int nthreads, T *out) {                                       \
    (void)x; (void)n; (void)c; (void)h; (void)w; (void)weight; (void)bias; (void)fn;          \
    (void)kh; (void)kw; (void)ph; (void)pw; (void)relu; (void)nthreads; (void)out;            \
    return -2;                                                                                \
  }                                                                                           \
  int fc_conv2d_weight_grad_##sfx(const T *x, const T *dout, fc_int n, fc_int c, fc_int h,    \
                                  fc_int w, fc_int fn, fc_int kh, fc_int kw, fc_int ph,       \
                                  fc_int pw, int nthreads, T *dw) {                           \
    (void)x; (void)dout; (void)n; (void)c; (void)h; (void)w; (void)fn; (void)kh; (void)kw;    \
    (void)ph; (void)pw; (void)nthreads; (void)dw;                                             \
    return -2;                                                                                \
  }
FC_NO_DIRECT(float, f32)
FC_NO_DIRECT(double, f64)

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

void fc_conv_cap_isa(int level) { fc_isa_cap = level; }

/* The blocked kernels (conv_blocked_impl.h) for each instruction set, float32.
 * Each block sets the vector type and its operations, the register tiles that
 * fit its register file, and the name suffix; FC_TN(fc_bk_fwd) and
 * FC_TN(fc_bk_dw) (the task arguments) are declared by conv_blocked.c. */

#if FC_BK_X86
/* --- AVX-512F: 16 floats a vector, 32 zmm registers --------------------------
 * Forward: up to 28 accumulators (P pixels x NB output blocks) plus NB weight
 * vectors; with NB = 1 the broadcast is a memory operand of the FMA, with
 * NB > 1 it takes a register, so NB = 4 stops at 6 pixels (7 spilled). */
#define FC_FWD_TILES(X)                                                                  \
  X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(8, 1) X(9, 1) X(10, 1)       \
  X(11, 1) X(12, 1) X(13, 1) X(14, 1)                                                    \
  X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) X(7, 2) X(8, 2) X(9, 2) X(10, 2)       \
  X(11, 2) X(12, 2) X(13, 2) X(14, 2)                                                    \
  X(1, 3) X(2, 3) X(3, 3) X(4, 3) X(5, 3) X(6, 3) X(7, 3) X(8, 3) X(9, 3)                \
  X(1, 4) X(2, 4) X(3, 4) X(4, 4) X(5, 4) X(6, 4)
/* Weight gradient: (input channels CIG dividing the block, output blocks NB). */
#define FC_DW_TILES(X) X(16, 1) X(8, 1) X(8, 2) X(8, 3) X(4, 1) X(4, 2) X(4, 3) X(4, 4) \
  X(2, 1) X(2, 2) X(2, 3) X(2, 4) X(1, 1) X(1, 2) X(1, 3) X(1, 4)
#define FC_DW1_TILES(X)                                                                  \
  X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)      \
  X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23) X(24) X(25) X(26) X(27) X(28)
#define V __m512
#define CB 16
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
/* max(0, v) returns its second operand for a NaN and for -0: as v < 0 ? 0 : v. */
#define VRELU(v) _mm512_max_ps(_mm512_setzero_ps(), (v))
#define FC_TARGET __attribute__((target("avx512f,avx2,fma")))
#define FC_ISA(name) name##_avx512_f32
#include "conv_blocked_impl.h"
#include "conv_blocked_undef.h"

/* --- AVX2+FMA: 8 floats, 16 ymm registers: at most 12 accumulators ---------- */
#define FC_FWD_TILES(X)                                                                  \
  X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(8, 1) X(9, 1) X(10, 1)       \
  X(11, 1) X(12, 1)                                                                      \
  X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2)                                        \
  X(1, 3) X(2, 3) X(3, 3) X(4, 3)                                                        \
  X(1, 4) X(2, 4) X(3, 4)
#define FC_DW_TILES(X) X(8, 1) X(4, 1) X(4, 2) X(2, 1) X(2, 2) X(2, 3) X(2, 4) X(1, 1) \
  X(1, 2) X(1, 3) X(1, 4)
#define FC_DW1_TILES(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12)
#define V __m256
#define CB 8
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VBCAST(p) _mm256_broadcast_ss(p)
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VRELU(v) _mm256_max_ps(_mm256_setzero_ps(), (v))
#define FC_TARGET __attribute__((target("avx2,fma")))
#define FC_ISA(name) name##_avx2_f32
#include "conv_blocked_impl.h"
#include "conv_blocked_undef.h"
#endif

/* --- baseline: GCC/Clang vectors of 8 floats (two SSE registers on x86-64,
 * whatever the target elsewhere), no FMA: at most 6 accumulators ------------ */
#define FC_FWD_TILES(X) X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(1, 2) X(2, 2) \
  X(3, 2) X(1, 3) X(2, 3) X(1, 4)
#define FC_DW_TILES(X) X(4, 1) X(2, 1) X(2, 2) X(1, 1) X(1, 2) X(1, 3) X(1, 4)
#define FC_DW1_TILES(X) X(1) X(2) X(3) X(4) X(5) X(6)
#define V fc_bk_v8f
#define CB 8
#define VZERO() ((V){0})
#define VLOAD(p) ((V)(*(const fc_bk_v8fu *)(p)))
#define VSTORE(p, v) (*(fc_bk_v8fu *)(p) = (v))
#define VBCAST(p) (VZERO() + *(p))
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VRELU(v) ((V)((fc_bk_v8i)(v) & ~((v) < VZERO())))
#define FC_TARGET
#define FC_ISA(name) name##_baseline_f32
#include "conv_blocked_impl.h"
#include "conv_blocked_undef.h"

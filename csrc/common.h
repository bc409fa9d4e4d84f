/* What every kernel file shares: portability macros, the one output-size
 * formula, the bounds test, and the parallel loop. Internal to csrc/. */
#ifndef FASTCONV_COMMON_H
#define FASTCONV_COMMON_H

#include "fastconv.h"

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Inputs and outputs never overlap (functional refuses an out= that may):
 * telling the compiler lets it add whole window rows with vector instructions. */
#if defined(_MSC_VER)
#define FC_RESTRICT __restrict
#else
#define FC_RESTRICT restrict
#endif

#if defined(_MSC_VER)
#define FC_INLINE static __forceinline
#elif defined(__GNUC__)
#define FC_INLINE static inline __attribute__((always_inline))
#else
#define FC_INLINE static inline
#endif

/* Caffe-style bounds test: casting to unsigned turns a negative coordinate into
 * a huge one, so a single comparison rejects both ends. */
#define FC_INSIDE(i, size) ((uint64_t)(i) < (uint64_t)(size))

/* The output size of a window sliding over one axis; the only copy of the
 * formula on the C side (fastconv/_geometry.py has the Python one). */
FC_INLINE fc_int fc_out_size(fc_int size, fc_int kernel, fc_int stride, fc_int pad,
                             fc_int dilation) {
  return (size + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1;
}

/* Records the size of the team running the current parallel region, so the
 * tests can tell that a call really was split (fc_last_team). */
void fc_note_team(void);

/* A single thread must not touch OpenMP at all: in a child forked after the
 * parent ran a parallel region, libgomp's thread pool is gone and even a team
 * of one may wait on it. So nthreads <= 1 takes a plain loop. */
#if !defined(_OPENMP)
#define FC_OMP_FOR
#elif defined(_MSC_VER)
#define FC_OMP_FOR __pragma(omp parallel for schedule(static) num_threads(nthreads))
#else
#define FC_OMP_FOR _Pragma("omp parallel for schedule(static) num_threads(nthreads)")
#endif
#define FC_PARALLEL_FOR(i, count, nthreads, body)                              \
  do {                                                                         \
    const fc_int fc_count_ = (count);                                          \
    if ((nthreads) > 1) {                                                      \
      FC_OMP_FOR                                                               \
      for (fc_int i = 0; i < fc_count_; i++) {                                 \
        if (i == 0) fc_note_team();                                            \
        body;                                                                  \
      }                                                                        \
    } else {                                                                   \
      for (fc_int i = 0; i < fc_count_; i++) { body; }                         \
    }                                                                          \
  } while (0)

#endif

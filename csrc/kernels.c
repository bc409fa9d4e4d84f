/* Instantiates kernels_impl.h for float and double, plus the OpenMP queries. */
#include "fastconv.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

int fc_openmp_enabled(void) {
#ifdef _OPENMP
  return 1;
#else
  return 0;
#endif
}

int fc_max_threads(void) {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/* col and the image never overlap: telling the compiler lets it add whole
 * window rows with vector instructions. */
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
#define FC_PARALLEL_FOR(i, count, nthreads, body)      \
  do {                                                 \
    const fc_int fc_count_ = (count);                  \
    if ((nthreads) > 1) {                              \
      FC_OMP_FOR                                       \
      for (fc_int i = 0; i < fc_count_; i++) { body; } \
    } else {                                           \
      for (fc_int i = 0; i < fc_count_; i++) { body; } \
    }                                                  \
  } while (0)

#define T float
#define FC_UINT uint32_t
#define FC_NAME(op) fc_##op##_f32
#define FC_SQRT sqrtf
#include "kernels_impl.h"
#undef T
#undef FC_UINT
#undef FC_NAME
#undef FC_SQRT

#define T double
#define FC_UINT uint64_t
#define FC_NAME(op) fc_##op##_f64
#define FC_SQRT sqrt
#include "kernels_impl.h"
#undef T
#undef FC_UINT
#undef FC_NAME
#undef FC_SQRT

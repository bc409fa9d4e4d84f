/* OpenMP queries for the Python runtime (fastconv._runtime). */
#include "common.h"
#include "testing.h"

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

int fc_thread_limit(void) {
#ifdef _OPENMP
  return omp_get_thread_limit();
#else
  return 1;
#endif
}

static int fc_team = 0;

void fc_note_team(void) {
#ifdef _OPENMP
  const int t = omp_get_num_threads();
#pragma omp atomic write
  fc_team = t;
#endif
}

int fc_last_team(void) {
  int t;
#ifdef _OPENMP
#pragma omp atomic read
#endif
  t = fc_team;
  return t;
}

void fc_reset_team(void) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
  fc_team = 0;
}

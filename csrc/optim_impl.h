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

/* Direct stride-1 convolution kernels, written once and included by
 * conv_direct.c for each element type and each instruction set it dispatches
 * to. Before inclusion T is the element type, V the 32-byte vector of T with
 * VL lanes (8 floats or 4 doubles), VLOAD/VSTORE/VSPLAT its unaligned load,
 * store and broadcast, FC_TARGET the function attribute of the instruction
 * set (empty for the baseline) and FC_ISA(name) suffixes the function names.
 *
 * The trick that makes a direct convolution a long vector loop: on the padded
 * image laid out row after row (width wp), output pixel (y, x) sits at
 * q = y*wp + x and tap (i, j) reads q + i*wp + j. So every tap is one
 * contiguous run over q, whatever the image width; the wp - ow columns past
 * the right edge of each row are computed too and thrown away.
 *
 * Register blocking: 4 filters x 3 vectors of positions (24 floats or 12
 * doubles) make 12 accumulators, which stay in registers across all c*kh*kw
 * taps; each tap loads 3 vectors of input and 4 weights for 12 multiply-adds. */

/* out_grid[f][q] for f in [0, fn4) and q in [0, qpad): the correlation of one
 * padded image with the packed weights (see pack_weights). */
FC_TARGET static void FC_ISA(conv_grid)(const T *xpad, fc_int c, fc_int plane, fc_int wp,
                                        const T *wpack, fc_int fn4, fc_int kh, fc_int kw,
                                        fc_int qpad, T *grid) {
  const fc_int taps = c * kh * kw;
  for (fc_int f0 = 0; f0 < fn4; f0 += 4) {
    const T *wf = wpack + f0 * taps;
    for (fc_int q0 = 0; q0 < qpad; q0 += 3 * VL) {
      V a00 = {0}, a01 = {0}, a02 = {0}, a10 = {0}, a11 = {0}, a12 = {0};
      V a20 = {0}, a21 = {0}, a22 = {0}, a30 = {0}, a31 = {0}, a32 = {0};
      const T *wt = wf;
      for (fc_int ci = 0; ci < c; ci++) {
        const T *chan = xpad + ci * plane + q0;
        for (fc_int i = 0; i < kh; i++) {
          const T *src = chan + i * wp;
          for (fc_int j = 0; j < kw; j++, wt += 4) {
            const V x0 = VLOAD(src + j), x1 = VLOAD(src + j + VL),
                        x2 = VLOAD(src + j + 2 * VL);
            V w = VSPLAT(wt[0]);
            a00 += w * x0; a01 += w * x1; a02 += w * x2;
            w = VSPLAT(wt[1]);
            a10 += w * x0; a11 += w * x1; a12 += w * x2;
            w = VSPLAT(wt[2]);
            a20 += w * x0; a21 += w * x1; a22 += w * x2;
            w = VSPLAT(wt[3]);
            a30 += w * x0; a31 += w * x1; a32 += w * x2;
          }
        }
      }
      T *g = grid + f0 * qpad + q0;
      VSTORE(g, a00); VSTORE(g + VL, a01); VSTORE(g + 2 * VL, a02);
      g += qpad;
      VSTORE(g, a10); VSTORE(g + VL, a11); VSTORE(g + 2 * VL, a12);
      g += qpad;
      VSTORE(g, a20); VSTORE(g + VL, a21); VSTORE(g + 2 * VL, a22);
      g += qpad;
      VSTORE(g, a30); VSTORE(g + VL, a31); VSTORE(g + 2 * VL, a32);
    }
  }
}

/* dW for filters [f0, f0+4) and channel ci, summed over all images: for each
 * kernel row i and up to 3 kernel columns at a time, 12 vector accumulators
 * collect dgrid[f][q] * xpad[ci][q + i*wp + j] over q and images, then are
 * summed across lanes in a fixed order. One task owns these dW entries, so
 * the result does not depend on how tasks are spread over threads. */
FC_TARGET static void FC_ISA(weight_grad_task)(const T *xpad_all, fc_int n,
                                               fc_int x_image, fc_int plane, fc_int wp,
                                               const T *dgrid_all, fc_int d_image,
                                               fc_int qpad, fc_int f0, fc_int fn, fc_int ci,
                                               fc_int c, fc_int kh, fc_int kw, T *dw) {
  for (fc_int i = 0; i < kh; i++) {
    for (fc_int j0 = 0; j0 < kw; j0 += 3) {
      V acc[4][3];
      for (int f = 0; f < 4; f++)
        for (int j = 0; j < 3; j++) acc[f][j] = VSPLAT((T)0);
      for (fc_int ni = 0; ni < n; ni++) {
        const T *src = xpad_all + ni * x_image + ci * plane + i * wp + j0;
        const T *d = dgrid_all + ni * d_image + f0 * qpad;
        for (fc_int q = 0; q < qpad; q += VL) {
          const V x0 = VLOAD(src + q), x1 = VLOAD(src + q + 1),
                      x2 = VLOAD(src + q + 2);
          for (int f = 0; f < 4; f++) {
            const V g = VLOAD(d + f * qpad + q);
            acc[f][0] += g * x0;
            acc[f][1] += g * x1;
            acc[f][2] += g * x2;
          }
        }
      }
      for (int f = 0; f < 4 && f0 + f < fn; f++)
        for (fc_int j = j0; j < kw && j < j0 + 3; j++) {
          T lanes[VL], s = 0;
          VSTORE(lanes, acc[f][j - j0]);
          for (int l = 0; l < VL; l++) s += lanes[l];
          dw[(((f0 + f) * c + ci) * kh + i) * kw + j] = s;
        }
    }
  }
}

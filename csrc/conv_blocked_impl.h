/* Channel-blocked kernels for one instruction set, written once: included by
 * conv_blocked_isas.h with T the element type, V its vector of CB lanes (one
 * channel block), VZERO/VLOAD/VSTORE/VBCAST(p: broadcast *p)/VFMA(a, b, c:
 * a*b + c)/VRELU, FC_TARGET the function attribute of the instruction set and
 * FC_ISA(name) the per-set name; the tile-size lists FC_FWD_TILES,
 * FC_DW_TILES and FC_DW1_TILES say which register tiles fit its registers.
 *
 * Every tile keeps its accumulators in registers across its whole reduction
 * and touches memory for the result once; the lists give the tile functions
 * compile-time sizes, so the loops over tile elements unroll completely. */

#ifndef FC_CUNROLL
#define FC_CUNROLL 4
#endif
#ifndef FC_BK_UNROLL
#define FC_BK_PRAGMA(x) _Pragma(#x)
#define FC_BK_UNROLL(n) FC_BK_PRAGMA(GCC unroll n)
#endif
/* Forward tile: P output pixels of one row x NB output-channel blocks.
 * xr: the input row of the first kernel row used, in a buffer padded in w
 * (pixel x of tap j at xr[(x + j) * CBI + c]); xrs, xbs: strides between
 * input rows and between input channel blocks; nrow kernel rows; wt: the
 * weights of (first output block, channel block 0, first kernel row used),
 * wfs, wcs: strides between output blocks and between channel blocks. */
FC_TARGET FC_INLINE void FC_ISA(fwd_tile)(const T *xr, fc_int xrs, fc_int xbs, fc_int ncb,
                                          int nrow, fc_int kw, const T *wt, fc_int wfs,
                                          fc_int wcs, const T *bias, int relu, T *o,
                                          fc_int ofs, const int P, const int NB,
                                          const int CBI) {
  V acc[14][4];
#pragma GCC unroll 14
  for (int k = 0; k < P; k++)
#pragma GCC unroll 4
    for (int b = 0; b < NB; b++) acc[k][b] = VZERO();
  const fc_int wrow = kw * CBI * CB;
  for (fc_int cb = 0; cb < ncb; cb++) {
    for (int i = 0; i < nrow; i++) {
      const T *xi = xr + cb * xbs + i * xrs;
      const T *wi = wt + cb * wcs + i * wrow;
      for (fc_int j = 0; j < kw; j++, xi += CBI, wi += CBI * CB) {
        FC_BK_UNROLL(FC_CUNROLL)
        for (int c = 0; c < CBI; c++) {
          V wv[4];
#pragma GCC unroll 4
          for (int b = 0; b < NB; b++) wv[b] = VLOAD(wi + b * wfs + c * CB);
#pragma GCC unroll 14
          for (int k = 0; k < P; k++) {
            const V xv = VBCAST(xi + k * CBI + c);
#pragma GCC unroll 4
            for (int b = 0; b < NB; b++) acc[k][b] = VFMA(wv[b], xv, acc[k][b]);
          }
        }
      }
    }
  }
#pragma GCC unroll 4
  for (int b = 0; b < NB; b++) {
    const V bv = bias ? VLOAD(bias + b * CB) : VZERO();
#pragma GCC unroll 14
    for (int k = 0; k < P; k++) {
      V v = acc[k][b] + bv;
      if (relu) v = VRELU(v);
      VSTORE(o + b * ofs + k * CB, v);
    }
  }
}

typedef void (*FC_ISA(fwd_fn))(const T *, fc_int, fc_int, fc_int, int, fc_int, const T *,
                               fc_int, fc_int, const T *, int, T *, fc_int);
#define FC_FWD_INST(P, NB, CBI, tag)                                                       \
  FC_TARGET static void FC_ISA(fwd_##P##_##NB##_##tag)(                                    \
      const T *xr, fc_int xrs, fc_int xbs, fc_int ncb, int nrow, fc_int kw, const T *wt,   \
      fc_int wfs, fc_int wcs, const T *bias, int relu, T *o, fc_int ofs) {                 \
    FC_ISA(fwd_tile)(xr, xrs, xbs, ncb, nrow, kw, wt, wfs, wcs, bias, relu, o, ofs, P, NB, \
                     CBI);                                                                 \
  }
#define FC_FWD_INST_BOTH(P, NB) FC_FWD_INST(P, NB, 1, s) FC_FWD_INST(P, NB, CB, b)
FC_FWD_TILES(FC_FWD_INST_BOTH)
#define FC_FWD_ENTRY(P, NB) [0][NB - 1][P - 1] = FC_ISA(fwd_##P##_##NB##_s),             \
                            [1][NB - 1][P - 1] = FC_ISA(fwd_##P##_##NB##_b),
/* [blocked input][NB - 1][P - 1]; NULL where the tile does not fit. */
static const FC_ISA(fwd_fn) FC_ISA(fwd_table)[2][4][14] = {FC_FWD_TILES(FC_FWD_ENTRY)};
#undef FC_FWD_INST
#undef FC_FWD_INST_BOTH
#undef FC_FWD_ENTRY

/* One forward task: output rows [y0, y1) of image ni, every output block.
 * The input rows they read are copied once into buf with zero columns on
 * both sides, so no tile tests a border column; kernel rows that fall in the
 * vertical padding are skipped instead (they would only add zeros). */
FC_TARGET static void FC_ISA(fwd_task)(const FC_TN(fc_bk_fwd) *a, fc_int ni, fc_int y0,
                                       fc_int y1, T *buf) {
  const fc_int cbi = a->cbi, wp = a->w + 2 * a->pw, rowlen = wp * cbi;
  const fc_int rlo = y0 - a->ph > 0 ? y0 - a->ph : 0;
  const fc_int rhi = y1 - 1 - a->ph + a->kh < a->h ? y1 - 1 - a->ph + a->kh : a->h;
  const fc_int nr = rhi - rlo;
  for (fc_int cb = 0; cb < a->ncb; cb++)
    for (fc_int r = rlo; r < rhi; r++) {
      T *dst = buf + (cb * nr + r - rlo) * rowlen;
      const T *src = a->x + ((ni * a->ncb + cb) * a->h + r) * a->w * cbi;
      memset(dst, 0, (size_t)(a->pw * cbi) * sizeof(T));
      memcpy(dst + a->pw * cbi, src, (size_t)(a->w * cbi) * sizeof(T));
      memset(dst + (a->pw + a->w) * cbi, 0, (size_t)(a->pw * cbi) * sizeof(T));
    }
  const fc_int wcs = a->kh * a->kw * cbi * CB, wfs = a->ncb * wcs, ofs = a->oh * a->ow * CB;
  for (fc_int y = y0; y < y1; y++) {
    const fc_int ilo = a->ph - y > 0 ? a->ph - y : 0;
    const fc_int ihi = a->h + a->ph - y < a->kh ? a->h + a->ph - y : a->kh;
    const int nrow = ihi > ilo ? (int)(ihi - ilo) : 0;
    const T *xr = buf + (y - a->ph + ilo - rlo) * rowlen;
    for (fc_int fb0 = 0; fb0 < a->nfb; fb0 += a->nb) {
      const int nb = (int)(a->nfb - fb0 < a->nb ? a->nfb - fb0 : a->nb);
      const T *wt = a->wp + fb0 * wfs + ilo * a->kw * cbi * CB;
      const T *bias = a->bias ? a->bias + fb0 * CB : NULL;
      T *o = a->out + ((ni * a->nfb + fb0) * a->oh + y) * a->ow * CB;
      for (fc_int x0 = 0; x0 < a->ow;) {
        /* Equal tiles of at most a->p pixels (p or p - 1 wide). */
        const fc_int left = a->ow - x0, ntiles = (left + a->p - 1) / a->p;
        const int p = (int)((left + ntiles - 1) / ntiles);
        FC_ISA(fwd_table)[cbi != 1][nb - 1][p - 1](xr + x0 * cbi, rowlen, nr * rowlen,
                                                  a->ncb, nrow, a->kw, wt, wfs, wcs, bias,
                                                  a->relu, o + x0 * CB, ofs);
        x0 += p;
      }
    }
  }
}

/* Weight-gradient tile on blocked input: CIG input channels x NB output blocks
 * of one tap, summed over a rectangle of output pixels (ny rows of nx) of one
 * image, added into dst (the packed layout: output block stride wfs, input
 * channel stride CB). d: dout at the rectangle's corner, dfs between output
 * blocks, drs between rows; xp: the input it meets, xrs between rows. */
FC_TARGET FC_INLINE void FC_ISA(dw_tile)(const T *d, fc_int dfs, fc_int drs, const T *xp,
                                         fc_int xrs, fc_int ny, fc_int nx, T *dst,
                                         fc_int wfs, const int CIG, const int NB) {
  V acc[16][4];
#pragma GCC unroll 16
  for (int c = 0; c < CIG; c++)
#pragma GCC unroll 4
    for (int b = 0; b < NB; b++) acc[c][b] = VZERO();
  for (fc_int y = 0; y < ny; y++) {
    const T *dy = d + y * drs, *xy = xp + y * xrs;
    for (fc_int x = 0; x < nx; x++) {
      V dv[4];
#pragma GCC unroll 4
      for (int b = 0; b < NB; b++) dv[b] = VLOAD(dy + b * dfs + x * CB);
#pragma GCC unroll 16
      for (int c = 0; c < CIG; c++) {
        const V xv = VBCAST(xy + x * CB + c);
#pragma GCC unroll 4
        for (int b = 0; b < NB; b++) acc[c][b] = VFMA(dv[b], xv, acc[c][b]);
      }
    }
  }
#pragma GCC unroll 4
  for (int b = 0; b < NB; b++)
#pragma GCC unroll 16
    for (int c = 0; c < CIG; c++) {
      T *p = dst + b * wfs + c * CB;
      VSTORE(p, VLOAD(p) + acc[c][b]);
    }
}

typedef void (*FC_ISA(dw_fn))(const T *, fc_int, fc_int, const T *, fc_int, fc_int, fc_int,
                              T *, fc_int);
#define FC_DW_INST(CIG, NB)                                                                \
  FC_TARGET static void FC_ISA(dw_##CIG##_##NB)(const T *d, fc_int dfs, fc_int drs,       \
                                                const T *xp, fc_int xrs, fc_int ny,        \
                                                fc_int nx, T *dst, fc_int wfs) {           \
    FC_ISA(dw_tile)(d, dfs, drs, xp, xrs, ny, nx, dst, wfs, CIG, NB);                     \
  }
FC_DW_TILES(FC_DW_INST)
#define FC_DW_ENTRY(CIG, NB) [NB - 1][CIG - 1] = FC_ISA(dw_##CIG##_##NB),
static const FC_ISA(dw_fn) FC_ISA(dw_table)[4][16] = {FC_DW_TILES(FC_DW_ENTRY)};
#undef FC_DW_INST
#undef FC_DW_ENTRY

/* Weight-gradient tile on NCHW input (cbi = 1, the first layer: few
 * channels, so the taps are the tile): TT taps x one output block over every
 * output pixel of one channel plane, zero-padded to rows of wp in plane; off
 * gives each tap's offset i*wp + j; dst: the TT taps' CB-wide entries. */
FC_TARGET FC_INLINE void FC_ISA(dw1_tile)(const T *d, fc_int drs, const T *plane, fc_int wp,
                                          const fc_int *off, fc_int oh, fc_int ow, T *dst,
                                          const int TT) {
  V acc[28];
  fc_int o[28];
#pragma GCC unroll 28
  for (int t = 0; t < TT; t++) {
    acc[t] = VZERO();
    o[t] = off[t];
  }
  for (fc_int y = 0; y < oh; y++) {
    const T *dy = d + y * drs, *xy = plane + y * wp;
    for (fc_int x = 0; x < ow; x++) {
      const V dv = VLOAD(dy + x * CB);
#pragma GCC unroll 28
      for (int t = 0; t < TT; t++) acc[t] = VFMA(dv, VBCAST(xy + x + o[t]), acc[t]);
    }
  }
#pragma GCC unroll 28
  for (int t = 0; t < TT; t++) VSTORE(dst + t * CB, VLOAD(dst + t * CB) + acc[t]);
}

typedef void (*FC_ISA(dw1_fn))(const T *, fc_int, const T *, fc_int, const fc_int *, fc_int,
                               fc_int, T *);
#define FC_DW1_INST(TT)                                                                    \
  FC_TARGET static void FC_ISA(dw1_##TT)(const T *d, fc_int drs, const T *plane, fc_int wp, \
                                         const fc_int *off, fc_int oh, fc_int ow, T *dst) { \
    FC_ISA(dw1_tile)(d, drs, plane, wp, off, oh, ow, dst, TT);                            \
  }
FC_DW1_TILES(FC_DW1_INST)
#define FC_DW1_ENTRY(TT) [TT - 1] = FC_ISA(dw1_##TT),
static const FC_ISA(dw1_fn) FC_ISA(dw1_table)[28] = {FC_DW1_TILES(FC_DW1_ENTRY)};
#undef FC_DW1_INST
#undef FC_DW1_ENTRY

/* One weight-gradient task: output blocks [fb0, fb0 + nb) x input block cb
 * (blocked input) or input channel cb (NCHW input), summed over images
 * [n0, n1) into part (packed layout), which it owns. buf: one padded plane
 * (NCHW input only). The tasks of input block 0 also sum dout into dbp (the
 * chunk's bias gradient, nfb blocks), or not if dbp is NULL: image by image,
 * each image's pixels in four interleaved runs. */
FC_TARGET static void FC_ISA(dw_task)(const FC_TN(fc_bk_dw) *a, fc_int n0, fc_int n1,
                                      fc_int fb0, int nb, fc_int cb, T *part, T *dbp,
                                      T *buf) {
  const fc_int kh = a->kh, kw = a->kw, ph = a->ph, pw = a->pw, oh = a->oh, ow = a->ow;
  const fc_int cbi = a->cbi, wcs = kh * kw * cbi * CB, wfs = a->ncb * wcs;
  const fc_int dfs = oh * ow * CB;
  if (dbp && cb == 0)
    for (int b = 0; b < nb; b++) {
      V s = VZERO();
      for (fc_int ni = n0; ni < n1; ni++) {
        const T *d = a->dout + (ni * a->nfb + fb0 + b) * dfs;
        V r0 = VZERO(), r1 = VZERO(), r2 = VZERO(), r3 = VZERO();
        fc_int q = 0;
        for (; q + 4 <= oh * ow; q += 4) {
          r0 = r0 + VLOAD(d + q * CB), r1 = r1 + VLOAD(d + (q + 1) * CB);
          r2 = r2 + VLOAD(d + (q + 2) * CB), r3 = r3 + VLOAD(d + (q + 3) * CB);
        }
        for (; q < oh * ow; q++) r0 = r0 + VLOAD(d + q * CB);
        s = s + ((r0 + r1) + (r2 + r3));
      }
      VSTORE(dbp + (fb0 + b) * CB, s);
    }
  for (int b = 0; b < nb; b++)
    memset(part + (fb0 + b) * wfs + cb * wcs, 0, (size_t)wcs * sizeof(T));
  for (fc_int ni = n0; ni < n1; ni++) {
    const T *d = a->dout + (ni * a->nfb + fb0) * dfs;
    if (cbi == 1) {
      const fc_int wp = a->w + 2 * pw, hp = a->h + 2 * ph;
      memset(buf, 0, (size_t)(hp * wp) * sizeof(T));
      const T *src = a->x + (ni * a->ncb + cb) * a->h * a->w;
      for (fc_int r = 0; r < a->h; r++)
        memcpy(buf + (r + ph) * wp + pw, src + r * a->w, (size_t)a->w * sizeof(T));
      fc_int off[28];
      for (fc_int t0 = 0; t0 < kh * kw; t0 += a->tt) {
        const int tt = (int)(kh * kw - t0 < a->tt ? kh * kw - t0 : a->tt);
        for (int t = 0; t < tt; t++) off[t] = ((t0 + t) / kw) * wp + (t0 + t) % kw;
        for (int b = 0; b < nb; b++)
          FC_ISA(dw1_table)[tt - 1](d + b * dfs, ow * CB, buf, wp, off, oh, ow,
                                    part + (fb0 + b) * wfs + cb * wcs + t0 * CB);
      }
      continue;
    }
    const T *xc = a->x + (ni * a->ncb + cb) * a->h * a->w * CB;
    for (fc_int i = 0; i < kh; i++) {
      const fc_int ylo = ph - i > 0 ? ph - i : 0;
      const fc_int yhi = a->h + ph - i < oh ? a->h + ph - i : oh;
      if (yhi <= ylo) continue;
      for (fc_int j = 0; j < kw; j++) {
        const fc_int xlo = pw - j > 0 ? pw - j : 0;
        const fc_int xhi = a->w + pw - j < ow ? a->w + pw - j : ow;
        if (xhi <= xlo) continue;
        const T *dd = d + (ylo * ow + xlo) * CB;
        const T *xp = xc + ((ylo + i - ph) * a->w + xlo + j - pw) * CB;
        T *dst = part + fb0 * wfs + cb * wcs + (i * kw + j) * CB * CB;
        for (int c0 = 0; c0 < CB; c0 += a->cig)
          FC_ISA(dw_table)[nb - 1][a->cig - 1](dd, dfs, ow * CB, xp + c0, a->w * CB,
                                              yhi - ylo, xhi - xlo, dst + c0 * CB, wfs);
      }
    }
  }
}

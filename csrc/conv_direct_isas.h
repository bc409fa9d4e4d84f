/* The direct kernels of one element type (T, V, VL, VLOAD, VSTORE, VSPLAT set
 * by conv_direct.c) for each instruction set: the x86-64 baseline and, where
 * the compiler can build it, AVX2+FMA. FC_BASELINE(name) and FC_AVX2(name)
 * give the function names; everything the includer set is undefined after. */
#define FC_TARGET
#define FC_ISA(name) FC_BASELINE(name)
#include "conv_direct_impl.h"
#undef FC_TARGET
#undef FC_ISA
#if FC_HAVE_AVX2_CLONE
#define FC_TARGET __attribute__((target("avx2,fma")))
#define FC_ISA(name) FC_AVX2(name)
#include "conv_direct_impl.h"
#undef FC_TARGET
#undef FC_ISA
#endif
#undef T
#undef V
#undef VL
#undef VLOAD
#undef VSTORE
#undef VSPLAT
#undef FC_BASELINE
#undef FC_AVX2

/* Includes the kernel bodies named by FC_IMPL once for float and once for
 * double. Inside them T is the scalar type, FC_UINT the unsigned integer of
 * its width, FC_SQRT its square root, and FC_NAME(op) the exported name
 * (fc_<op>_f32 or fc_<op>_f64). */
#define T float
#define FC_UINT uint32_t
#define FC_NAME(op) fc_##op##_f32
#define FC_SQRT sqrtf
#include FC_IMPL
#undef T
#undef FC_UINT
#undef FC_NAME
#undef FC_SQRT

#define T double
#define FC_UINT uint64_t
#define FC_NAME(op) fc_##op##_f64
#define FC_SQRT sqrt
#include FC_IMPL
#undef T
#undef FC_UINT
#undef FC_NAME
#undef FC_SQRT

/* im2col / col2im / unfold / fold for float and double (patches_impl.h). */
#include "common.h"

#define FC_IMPL "patches_impl.h"
#include "each_type.h"

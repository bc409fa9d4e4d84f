/* Max and average pooling, forward and backward, for float and double (pooling_impl.h). */
#include "common.h"

#define FC_IMPL "pooling_impl.h"
#include "each_type.h"

/* Fused optimiser steps (Adam) for float and double (optim_impl.h). */
#include "common.h"

#include <math.h>

#define FC_IMPL "optim_impl.h"
#include "each_type.h"

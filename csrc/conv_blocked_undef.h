/* Undefines what each instruction-set block of conv_blocked_isas.h set. */
#undef FC_FWD_TILES
#undef FC_DW_TILES
#undef FC_DW1_TILES
#undef V
#undef CB
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VBCAST
#undef VFMA
#undef VRELU
#undef FC_TARGET
#undef FC_ISA

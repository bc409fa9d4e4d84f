/* Hooks for fastconv's own tests, kept out of the public header: nothing a
 * caller of the kernels needs, but the only way a test can prove that a call
 * really split its work, or run the direct kernels' baseline build on a CPU
 * that has AVX2. The Python side reaches them through fastconv._testing. */
#ifndef FASTCONV_TESTING_H
#define FASTCONV_TESTING_H

/* Size of the team of the last parallel region any kernel ran (0 after
 * fc_reset_team when none ran since). runtime.c. */
int fc_last_team(void);
void fc_reset_team(void);

/* Make the direct convolution use its baseline build even where AVX2 exists.
 * conv_direct.c. */
void fc_conv_force_baseline(int on);

#endif

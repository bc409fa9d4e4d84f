"""
im2col, pictured
================

:func:`fastconv.im2col` turns every window a filter visits into one row of a
matrix, so that the convolution becomes one matrix product. Here a 1x6x6 image
and a 3x3 window with stride 1 give 4x4 = 16 windows: a (16, 9) matrix whose
row ``oh * 4 + ow`` holds the window whose top left corner is ``(oh, ow)``.
:func:`fastconv.col2im` goes back, adding up what overlapping windows share,
so each pixel comes back multiplied by the number of windows that cover it.
"""
import matplotlib.pyplot as plt
import numpy as np

import fastconv

x = np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6)
col = fastconv.im2col(x, 3, 3, stride=1, pad=0)
print("image", x.shape, "-> columns", col.shape, col.dtype)

cover = fastconv.col2im(np.ones_like(col), x.shape, 3, 3, stride=1, pad=0)[0, 0]
back = fastconv.col2im(col, x.shape, 3, 3, stride=1, pad=0)
print("col2im(im2col(x)) == x * windows per pixel:", bool(np.array_equal(back[0, 0], x[0, 0] * cover)))

# %%
# The image, the window of row 7 (``oh = 1, ow = 3``) marked on it, and the
# column matrix with that row highlighted.

fig, axes = plt.subplots(1, 3, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 1.2, 1]})
ax = axes[0]
ax.imshow(x[0, 0], cmap="Blues")
for (i, j), v in np.ndenumerate(x[0, 0]):
    ax.text(j, i, int(v), ha="center", va="center", fontsize=8)
ax.add_patch(plt.Rectangle((3 - 0.5, 1 - 0.5), 3, 3, fill=False, lw=2.5, ec="crimson"))
ax.set_title("input 6x6, window of row 7")
ax.set_xticks([]), ax.set_yticks([])

ax = axes[1]
ax.imshow(col, cmap="Blues", aspect="auto")
ax.add_patch(plt.Rectangle((-0.5, 7 - 0.5), 9, 1, fill=False, lw=2.5, ec="crimson"))
for (i, j), v in np.ndenumerate(col):
    ax.text(j, i, int(v), ha="center", va="center", fontsize=6)
ax.set_title("im2col: (16 windows, 9 taps)")
ax.set_xlabel("tap (fh, fw)")
ax.set_ylabel("window (oh, ow)")

ax = axes[2]
ax.imshow(cover, cmap="Oranges")
for (i, j), v in np.ndenumerate(cover):
    ax.text(j, i, int(v), ha="center", va="center", fontsize=9)
ax.set_title("col2im of ones: windows per pixel")
ax.set_xticks([]), ax.set_yticks([])
fig.tight_layout()

# %%
# A convolution is then the product of the columns with the filters laid out
# as rows, as the book's ``Convolution`` layer computes it; it agrees with
# :func:`fastconv.conv2d`, which may use another algorithm (see
# :func:`fastconv.ops.conv_plan`).

rng = np.random.default_rng(0)
W = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
by_product = (col @ W.reshape(2, -1).T).reshape(1, 4, 4, 2).transpose(0, 3, 1, 2)
direct = fastconv.conv2d(x, W)
print("largest difference:", float(np.abs(by_product - direct).max()))

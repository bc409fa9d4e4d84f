"""Pictures of what a network learned: filter grids, feature maps, learning
curves, a confusion matrix and the misclassified digits.

Figures are drawn with matplotlib's object API on an Agg canvas, so nothing
here needs a display or changes the caller's pyplot backend, and matplotlib is
imported only when a picture is actually drawn. Every picture replaces its
file atomically: a failed write leaves the previous picture in place.
"""
import math
import os

import numpy as np

from ..io.checkpoint import atomic_write

__all__ = [
    "plot_filters", "plot_filters_before_after", "plot_feature_maps", "plot_learning_curves",
    "confusion_matrix", "plot_confusion_matrix", "plot_misclassified", "format_confusion_matrix",
    "plot_predictions",
]


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    """Write the figure to ``path`` atomically (see fastconv.io.checkpoint.atomic_write);
    the format follows the suffix, PNG when there is none. An open binary file is
    written as PNG, in place."""
    if hasattr(path, "write"):
        fig.savefig(path, format="png")
        return
    suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    with atomic_write(path) as f:
        fig.savefig(f, format=suffix or "png")


def _grid(count, max_cols=10):
    cols = min(count, max_cols)
    return math.ceil(count / cols), cols


def _draw_grid(fig, images, titles=None, rect=(0, 0, 1, 1), max_cols=10, cmap="gray_r",
               shared_scale=False):
    rows, cols = _grid(len(images), max_cols)
    left, bottom, width, height = rect
    vmin = vmax = None
    if shared_scale:
        vmin, vmax = float(np.min(images)), float(np.max(images))
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        ax = fig.add_axes([left + c * width / cols, bottom + (rows - 1 - r) * height / rows,
                           width / cols * 0.92, height / rows * (0.80 if titles else 0.92)])
        ax.imshow(img, cmap=cmap, interpolation="nearest", vmin=vmin, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles:
            ax.set_title(titles[i], fontsize=7, pad=2)


def _filters_as_images(W):
    """(FN, C, FH, FW) weights as FN images: the first channel, as the book draws them."""
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 4:
        raise ValueError(f"W must be a 4-D (FN, C, FH, FW) array, got shape {W.shape}")
    return W[:, 0]


def plot_filters(W, path, title="conv1 filters"):
    """Save a grid of the filters ``W`` (FN, C, FH, FW), first channel, to ``path``.

    Each filter is scaled on its own, black for large weights, as in the book.
    """
    images = _filters_as_images(W)
    rows, cols = _grid(len(images))
    fig = _figure(cols * 0.8, rows * 0.8 + 0.4)
    fig.suptitle(title, fontsize=10)
    _draw_grid(fig, images, rect=(0.02, 0.02, 0.96, 0.86))
    _save(fig, path)


def plot_filters_before_after(W_before, W_after, path):
    """Save the conv1 filters before and after training, one grid above the other."""
    before, after = _filters_as_images(W_before), _filters_as_images(W_after)
    rows, cols = _grid(len(before))
    fig = _figure(cols * 0.8, 2 * rows * 0.8 + 0.8)
    fig.text(0.5, 0.97, "conv1 filters before training (random init)", ha="center", fontsize=10)
    _draw_grid(fig, before, rect=(0.02, 0.52, 0.96, 0.42))
    fig.text(0.5, 0.475, "after training", ha="center", fontsize=10)
    _draw_grid(fig, after, rect=(0.02, 0.02, 0.96, 0.42))
    _save(fig, path)


def plot_feature_maps(image, maps, path, title="conv1 feature maps"):
    """Save one input image (H, W) beside its feature maps (FN, OH, OW)."""
    maps = np.asarray(maps, dtype=np.float64)
    rows, cols = _grid(len(maps))
    fig = _figure(cols * 0.9 + 1.6, max(rows * 0.9, 1.4) + 0.4)
    fig.suptitle(title, fontsize=10)
    span = 1.6 / (cols * 0.9 + 1.6)
    ax = fig.add_axes([0.01, 0.3, span * 0.9, 0.5])
    ax.imshow(np.asarray(image), cmap="gray_r", interpolation="nearest")
    ax.set_title("input", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    _draw_grid(fig, maps, titles=[str(i + 1) for i in range(len(maps))],
               rect=(span, 0.02, 1 - span - 0.01, 0.84), cmap="viridis")
    _save(fig, path)


def plot_learning_curves(history, path, iteration_losses=None):
    """Save loss and accuracy against epochs.

    ``history`` is a list of per-epoch dicts with ``loss``, ``train_acc`` and
    ``test_acc``; ``iteration_losses`` (optional) adds the per-batch losses.
    """
    epochs = [h["epoch"] for h in history]
    fig = _figure(10, 4)
    ax1, ax2 = fig.subplots(1, 2)
    if iteration_losses is not None and len(iteration_losses) and epochs:
        per_epoch = len(iteration_losses) / epochs[-1]
        x = np.arange(1, len(iteration_losses) + 1) / per_epoch
        ax1.plot(x, iteration_losses, lw=0.5, alpha=0.4, label="mini-batch")
    ax1.plot(epochs, [h["loss"] for h in history], "o-", label="epoch mean")
    ax1.set_yscale("log")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax1.legend()
    ax2.plot(epochs, [h["train_acc"] for h in history], "o-", label="train")
    ax2.plot(epochs, [h["test_acc"] for h in history], "s-", label="test")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.legend(loc="lower right")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def confusion_matrix(t, y, num_classes=10):
    """Counts (num_classes, num_classes): row = true label, column = prediction."""
    t = np.asarray(t, dtype=np.int64).ravel()
    y = np.asarray(y, dtype=np.int64).ravel()
    if t.shape != y.shape:
        raise ValueError(f"t and y differ in length: {t.size} vs {y.size}")
    return np.bincount(t * num_classes + y, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def format_confusion_matrix(cm):
    """The confusion matrix as text, rows true labels, columns predictions."""
    n = cm.shape[0]
    width = max(5, len(str(cm.max())) + 1)
    lines = ["true\\pred" + "".join(f"{j:>{width}}" for j in range(n))]
    for i in range(n):
        lines.append(f"{i:>9}" + "".join(f"{cm[i, j]:>{width}}" for j in range(n)))
    return "\n".join(lines)


def plot_confusion_matrix(cm, path):
    """Save the confusion matrix as a heat map with the counts written in."""
    n = cm.shape[0]
    fig = _figure(6, 5.4)
    ax = fig.add_subplot(1, 1, 1)
    # Log colour scale: the diagonal holds ~1000 per class, errors a handful.
    ax.imshow(np.log1p(cm), cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if i == j else "black")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"confusion matrix, accuracy {acc:.2%}")
    fig.tight_layout()
    _save(fig, path)


def plot_misclassified(x, t, y, path, max_images=40):
    """Save a grid of misclassified images titled "true→predicted".

    x : (N, 1, H, W) or (N, H*W) images; t, y : (N,) true and predicted labels.
    """
    x = np.asarray(x)
    wrong = np.flatnonzero(np.asarray(t) != np.asarray(y))[:max_images]
    if wrong.size == 0:
        return 0
    side = int(round(math.sqrt(x[0].size)))
    images = x[wrong].reshape(len(wrong), -1, side, side)[:, 0]
    rows, cols = _grid(len(images))
    fig = _figure(cols * 0.9, rows * 1.0 + 0.4)
    fig.suptitle(f"misclassified (true→predicted), first {len(images)}", fontsize=10)
    _draw_grid(fig, images, titles=[f"{t[i]}→{y[i]}" for i in wrong],
               rect=(0.02, 0.02, 0.96, 0.86))
    _save(fig, path)
    return int(wrong.size)


def plot_predictions(inputs, probs, names, path):
    """Save one row per picture to ``path``: the network's input (H, W) beside a
    bar chart of its class probabilities. ``inputs`` (N, H, W), ``probs`` (N, K)."""
    import os
    inputs, probs = np.asarray(inputs), np.asarray(probs)
    n, k = probs.shape
    fig = _figure(6, 1.6 * n + 0.2)
    for i in range(n):
        bottom = 1 - (i + 1) / n
        ax = fig.add_axes([0.02, bottom + 0.08 / n, 0.25, 0.8 / n])
        ax.imshow(inputs[i], cmap="gray", interpolation="nearest", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(os.path.basename(str(names[i])), fontsize=7, pad=2)
        bars = fig.add_axes([0.35, bottom + 0.2 / n, 0.6, 0.65 / n])
        best = int(np.argmax(probs[i]))
        bars.bar(range(k), probs[i], color=["tab:red" if j == best else "tab:gray"
                                            for j in range(k)])
        bars.set_xticks(range(k))
        bars.set_ylim(0, 1)
        bars.tick_params(labelsize=7)
        bars.set_title(f"{best}: {probs[i, best]:.3f}", fontsize=8, pad=2)
    fig.savefig(path)

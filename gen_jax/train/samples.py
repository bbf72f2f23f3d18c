"""Writing model samples to the workdir: image grids as PNG, text as a .txt file."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def image_grid(levels, num_levels: int) -> np.ndarray:
    """(N, H, W, C) ints in [0, K) -> one (rows*H, cols*W, C) float grid in [0, 1], nearly
    square, unused cells black. Pixel value k / (K - 1)."""
    levels = np.asarray(levels)
    if levels.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {levels.shape}")
    n, h, w, c = levels.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros((rows * h, cols * w, c), np.float32)
    for i, img in enumerate(levels.astype(np.float32) / (num_levels - 1)):
        r, q = divmod(i, cols)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = img
    return np.clip(grid, 0.0, 1.0)


def save_image_grid(levels, num_levels: int, path: str) -> str:
    """Save `image_grid(levels, num_levels)` as a PNG (grayscale when C == 1), each image
    upscaled to at least 32 pixels high; returns path."""
    grid = image_grid(levels, num_levels)
    scale = max(1, 32 // np.asarray(levels).shape[1])  # small images: nearest-neighbour upscale
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if grid.shape[-1] == 1:
        plt.imsave(path, grid[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        plt.imsave(path, grid)
    return path


def save_text_samples(texts, path: str) -> str:
    """One decoded sample per block, separated by a line of dashes; returns path."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            f.write(f"--- sample {i} ---\n{text}\n")
    return path

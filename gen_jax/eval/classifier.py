"""A small image classifier trained on the experiment's own data; its penultimate layer is the
feature space for Frechet / kernel distances (no download of Inception weights needed)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


class ConvNet(nnx.Module):
    """(B, H, W, C) images in [-1, 1] -> (features (B, F), logits (B, num_classes))."""

    def __init__(self, channels: int, num_classes: int, width: int = 32, num_features: int = 64, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(channels, width, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(width, 2 * width, (3, 3), strides=(2, 2), rngs=rngs)
        self.dense = nnx.Linear(2 * width, num_features, rngs=rngs)
        self.head = nnx.Linear(num_features, num_classes, rngs=rngs)

    def __call__(self, x):
        h = nnx.gelu(self.conv1(x))
        h = nnx.gelu(self.conv2(h))
        features = nnx.gelu(self.dense(h.mean(axis=(1, 2))))
        return features, self.head(features)


@dataclasses.dataclass
class FeatureClassifier:
    """A trained classifier: `features(x)` for distances, `accuracy(x, y)` to show it learned."""

    model: ConvNet
    batch_size: int = 512

    def _apply(self, x, index):
        fn = nnx.jit(lambda m, b: m(b)[index])
        out = [np.asarray(fn(self.model, jnp.asarray(x[i : i + self.batch_size]))) for i in range(0, len(x), self.batch_size)]
        return np.concatenate(out)

    def features(self, x) -> np.ndarray:
        """(N, H, W, C) float images in [-1, 1] -> (N, F) float features."""
        return self._apply(np.asarray(x, np.float32), 0)

    def accuracy(self, x, labels) -> float:
        logits = self._apply(np.asarray(x, np.float32), 1)
        return float(np.mean(logits.argmax(-1) == np.asarray(labels)))


def train_classifier(key, images, labels, num_classes: int, *, steps: int = 300, batch_size: int = 128,
                     learning_rate: float = 3e-3) -> FeatureClassifier:
    """Trains `ConvNet` with Adam on (N, H, W, C) float images in [-1, 1] and int labels (N,)."""
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.int32)
    if images.ndim != 4 or labels.shape != images.shape[:1]:
        raise ValueError(f"need images (N,H,W,C) and labels (N,), got {images.shape} and {labels.shape}")
    init_key, data_key = jax.random.split(key)
    model = ConvNet(images.shape[-1], num_classes, rngs=nnx.Rngs(init_key))
    optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        def loss_fn(m):
            return optax.softmax_cross_entropy_with_integer_labels(m(x)[1], y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    rng = np.random.default_rng(np.asarray(jax.random.key_data(data_key)).ravel()[-1])
    for _ in range(steps):
        idx = rng.integers(0, len(images), batch_size)
        step(model, optimizer, jnp.asarray(images[idx]), jnp.asarray(labels[idx]))
    return FeatureClassifier(model)

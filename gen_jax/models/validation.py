"""Input checks shared by the models.

Shape, dtype and Python-number checks run at trace time, so the models stay jit-able. Token
*values* follow the failure policy of `gen_jax.core` (`gen_jax.core.checks.ids_in_range`):
the models raise ValueError for concrete out-of-range ids and, inside jit, set the logits of the
affected examples to NaN (an embedding lookup would otherwise wrap negative ids silently).
`check_tokens` is the eager check of a data batch.
"""
import jax.numpy as jnp
import numpy as np


def check_token_shape(tokens, max_len=None, name="tokens"):
    """Raise ValueError unless tokens is an integer (B, L) array with L <= max_len (if given)."""
    if tokens.ndim != 2:
        raise ValueError(f"{name} must have shape (batch, length), got shape {tokens.shape}")
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"{name} must be an integer array, got dtype {tokens.dtype}")
    if max_len is not None and tokens.shape[1] > max_len:
        raise ValueError(f"{name} length {tokens.shape[1]} exceeds the model's max_len {max_len}")


def check_time(t, batch, name="t"):
    """Raise ValueError unless t is a float array of shape (batch,) or a scalar."""
    shape = np.shape(t)
    if shape not in ((), (batch,)):
        raise ValueError(f"{name} must have shape ({batch},) or be a scalar, got shape {shape}")
    dtype = getattr(t, "dtype", None)
    if dtype is not None and not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must be a float array, got dtype {dtype}")


def check_label(label, batch, num_classes):
    """Raise ValueError if labels are given to an unconditional model or have the wrong shape."""
    if label is None:
        return
    if num_classes is None:
        raise ValueError("label given but the model was built with num_classes=None")
    if np.shape(label) != (batch,):
        raise ValueError(f"label must have shape ({batch},), got shape {np.shape(label)}")
    if not jnp.issubdtype(jnp.asarray(label).dtype, jnp.integer):
        raise ValueError(f"label must be an integer array, got dtype {jnp.asarray(label).dtype}")


def check_tokens(tokens, vocab_size, name="tokens"):
    """Eager check that every id lies in {0..vocab_size-1}; raises ValueError naming the bad range.

    Needs concrete values: do not call inside jit.
    """
    values = np.asarray(tokens)
    if values.size and (values.min() < 0 or values.max() >= vocab_size):
        raise ValueError(f"{name} ids must lie in [0, {vocab_size - 1}], "
                         f"got min {values.min()} and max {values.max()}")


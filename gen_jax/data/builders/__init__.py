"""tfds dataset builders for local sources, written as array_record (no TensorFlow needed)."""

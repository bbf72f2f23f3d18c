"""Sample-quality evaluation that needs no download: a classifier trained on the same data,
and Frechet / kernel distances between feature sets."""

from gen_jax.eval.classifier import FeatureClassifier, train_classifier
from gen_jax.eval.distances import frechet_distance, kernel_inception_distance

__all__ = ["FeatureClassifier", "train_classifier", "frechet_distance", "kernel_inception_distance"]

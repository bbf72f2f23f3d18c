"""Sample-quality evaluation that needs no download: a classifier trained on the same data,
Frechet / kernel distances between feature sets, and summary statistics of estimates."""

from gen_jax.eval.classifier import FeatureClassifier, train_classifier
from gen_jax.eval.distances import frechet_distance, kernel_inception_distance
from gen_jax.eval.stats import mean_and_se, paired_bound_check

__all__ = ["FeatureClassifier", "train_classifier", "frechet_distance", "kernel_inception_distance",
           "mean_and_se", "paired_bound_check"]

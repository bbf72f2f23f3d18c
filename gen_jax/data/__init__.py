"""Data layer: datasets by name (tfds array_record, no TensorFlow), batching, discretization, tokenizers."""
from gen_jax.data.dataset import DataSpec, Dataset
from gen_jax.data.discretize import binarize, from_centers, to_centers
from gen_jax.data.fingerprint import fingerprint
from gen_jax.data.markov import MarkovChain2
from gen_jax.data.pipeline import BatchIterator, eval_batches
from gen_jax.data.sources import KNOWN_DATASETS, load
from gen_jax.data.tokenizers import ByteTokenizer, CharTokenizer

__all__ = [
    "BatchIterator", "ByteTokenizer", "CharTokenizer", "DataSpec", "Dataset", "KNOWN_DATASETS",
    "MarkovChain2", "binarize", "eval_batches", "fingerprint", "from_centers", "load", "to_centers",
]

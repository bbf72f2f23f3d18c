"""Pieces of the main comparison experiment (experiments/compare.py): likelihood estimators on
one held-out set, samplers and sample quality, and the report."""

"""Runnable experiments; configs live in experiments/configs."""

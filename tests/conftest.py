"""Shared test setup: a persistent compilation cache so repeated runs skip XLA compiles.

The cache directory is also exported (JAX_COMPILATION_CACHE_DIR), so the experiment and training
processes that tests start as a user would (smoke runs, resumes after a kill) reuse each other's
compiles: a rerun or a resume compiles the same functions as the run before it. A cache entry
that cannot be read (a writer killed mid-write) is recompiled, with a warning, by jax itself.
"""
import os

import jax

_CACHE = os.path.abspath(os.environ.get(
    "GEN_JAX_TEST_CACHE", os.path.join(os.path.dirname(__file__), "..", ".jax_cache")))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

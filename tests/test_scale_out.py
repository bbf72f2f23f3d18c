"""Scaling past one device: parameter sharding strategies on a 2-D mesh (8 fake CPU devices in
one child process), gradient accumulation, bf16 mixed precision, activation checkpointing,
resume across mesh shapes, and their config validation."""
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs.base import get_base_config
from gen_jax import families
from gen_jax.train import build
from gen_jax.train.config import validate_config
from gen_jax.train.loop import train
from gen_jax.train.step import mean_loss_and_grad

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = ("ar", "gaussian", "masked", "flow", "block")


def scale_config(family, steps=3, **overrides):
    """A digits config small enough for seconds on CPU; overrides as section__field=value."""
    c = get_base_config(family, "digits")
    c.model.width = 32
    c.model.depth = 1
    c.model.num_heads = 2
    c.train.steps = steps
    c.train.batch_size = 16
    c.optimizer.warmup_steps = 1
    c.optimizer.learning_rate = 3e-3
    c.checkpoint.every_steps = steps
    c.logging.every_steps = 1
    c.logging.progress_bar = False
    c.logging.tensorboard = False
    c.eval.every_steps = 0
    c.eval.batch_size = 64
    c.eval.max_batches = 2
    c.sample.every_steps = 0
    for key, value in overrides.items():
        section, field = key.split("__")
        c[section][field] = value
    return c


def run_on_fake_devices(script: str, num_devices: int = 8, timeout: int = 600) -> dict:
    """Run `script` in a child python with `num_devices` fake CPU devices (XLA_FLAGS must be set
    before jax is imported); it prints one JSON line last, returned parsed."""
    prelude = textwrap.dedent(f"""
        import os, sys, json
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count={num_devices}"
        sys.path.insert(0, {os.path.join(REPO, "tests")!r})
        import jax
        jax.config.update("jax_compilation_cache_dir", {os.path.join(REPO, ".jax_cache")!r})
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
        assert jax.device_count() == {num_devices}
    """)
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script)],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])

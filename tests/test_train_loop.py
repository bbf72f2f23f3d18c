"""Training-loop infrastructure on a tiny self-contained model over sklearn digits: device-count
independence, exact resume, non-finite batches, checkpoint retention, eval weighting, metrics,
the LR schedule and the EMA. The families' objectives are exercised in test_train_families.py."""
import itertools
import json
import math
import os
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

from experiments.configs.base import get_base_config
from gen_jax.core.likelihood import ar_nll
from gen_jax.train import loop
from gen_jax.train.components import Components
from gen_jax.train.checkpoint import Checkpointer
from gen_jax.train.metrics import read_metrics, trim_metrics
from gen_jax.train.optimizer import ema_update, learning_rate_schedule, make_optimizer
from gen_jax.train.state import create_train_state, step_key
from gen_jax.train.step import train_step_fn

NUM_LEVELS = 17
NUM_DIMS = 64
HIDDEN = 16
BATCH = 16


def _digits():
    images = load_digits().images.astype(np.float32).reshape(-1, NUM_DIMS)  # levels 0..16
    return images[:1500], images[1500:]


def tiny_components(poison_step=None):
    """A per-pixel categorical model p(k_i | noisy image) -- deliberately trivial -- with the
    loop's whole interface: keyed loss (noise drawn from the step key), eval NLL, data at a
    position that is a pure function of the step. Batch at `poison_step` is all NaN."""
    train, test = _digits()

    def train_batches(start_step, shard_index, num_shards):
        local = BATCH // num_shards
        for step in itertools.count(start_step):
            idx = np.random.default_rng([7, step]).choice(len(train), BATCH, replace=False)
            image = train[idx[shard_index * local:(shard_index + 1) * local]]
            if step == poison_step:
                image = np.full_like(image, np.nan)
            yield {"image": image}

    def eval_batches():
        for start in range(0, len(test), 64):
            image = test[start:start + 64]
            weight = np.ones(64, np.float32)
            weight[len(image):] = 0.0
            yield {"image": np.pad(image, ((0, 64 - len(image)), (0, 0))), "weight": weight}

    k1, k2 = jax.random.split(jax.random.PRNGKey(3))
    params = {"w1": 0.1 * jax.random.normal(k1, (NUM_DIMS, HIDDEN)), "b1": jnp.zeros(HIDDEN),
              "w2": 0.1 * jax.random.normal(k2, (HIDDEN, NUM_DIMS * NUM_LEVELS)),
              "b2": jnp.zeros(NUM_DIMS * NUM_LEVELS)}

    def nll(params, batch, key):
        image = batch["image"]
        x = (2 * image + 1) / NUM_LEVELS - 1 + 0.5 * jax.random.normal(key, image.shape)
        h = jnp.tanh(x @ params["w1"] + params["b1"])
        logits = (h @ params["w2"] + params["b2"]).reshape(-1, NUM_DIMS, NUM_LEVELS)
        return ar_nll(logits, image.astype(jnp.int32))

    def loss(params, batch, key):
        return nll(params, batch, key) / (NUM_DIMS * math.log(2))

    return Components(train_batches=train_batches, eval_batches=eval_batches, params=params,
                      loss_fn=loss, nll_fn=nll, num_dims=NUM_DIMS)


def tiny_config(steps=6, num_devices=1, **train):
    c = get_base_config("ar", "digits")
    c.train.steps = steps
    c.train.batch_size = BATCH
    c.optimizer.learning_rate = 3e-2
    c.optimizer.warmup_steps = 2
    c.optimizer.ema_decay = 0.5
    c.mesh.num_devices = num_devices
    c.checkpoint.every_steps = 2
    c.checkpoint.keep = 2
    c.logging.every_steps = 1
    c.logging.progress_bar = False
    c.logging.tensorboard = False
    c.eval.every_steps = 0
    c.eval.batch_size = 64
    for key, value in train.items():
        section, field = key.split("__")
        c[section][field] = value
    return c


def run_tiny(workdir, num_devices=1, steps=6, stop_after=None, poison_step=None, **overrides):
    return loop.run(tiny_config(steps, num_devices, **overrides), workdir,
                    tiny_components(poison_step), stop_after=stop_after)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """6 steps in one go (the reference for several tests)."""
    return run_tiny(str(tmp_path_factory.mktemp("straight")))


def test_training_reduces_loss(straight):
    losses = [h["loss"] for h in straight.history]
    assert len(losses) == 6 and losses[-1] < losses[0]


def test_eight_devices_match_one_device(straight, tmp_path):
    """Same losses and params with the batch sharded over 8 fake CPU devices; differences are
    only float32 reduction order (tolerance 1e-5 relative over 6 Adam steps)."""
    script = textwrap.dedent(f"""
        import os, sys, json
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import jax, numpy as np
        jax.config.update("jax_compilation_cache_dir", {os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache")!r})
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
        assert jax.device_count() == 8
        from test_train_loop import run_tiny
        result = run_tiny({str(tmp_path / "eight")!r}, num_devices=8)
        np.savez({str(tmp_path / "eight.npz")!r}, *jax.device_get(jax.tree.leaves(result.state.params)))
        print(json.dumps([h["loss"] for h in result.history]))
    """)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(__file__)), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    losses8 = json.loads(out.stdout.strip().splitlines()[-1])
    losses1 = [h["loss"] for h in straight.history]
    np.testing.assert_allclose(losses8, losses1, rtol=1e-5)
    params8 = np.load(tmp_path / "eight.npz")
    for i, leaf in enumerate(jax.tree.leaves(straight.state.params)):
        np.testing.assert_allclose(params8[f"arr_{i}"], leaf, rtol=1e-4, atol=1e-6)


def test_resume_is_bitwise_identical(straight, tmp_path):
    """Stop after 3 steps (checkpoint), restart with the same workdir to 6: the whole state
    (params, opt state, EMA, rng, counters) equals the straight run's bit for bit -- same
    program, same batches (data position = step), same step keys on CPU."""
    workdir = str(tmp_path / "resumed")
    first = run_tiny(workdir, stop_after=3)
    assert int(first.state.step) == 3
    second = run_tiny(workdir)
    assert [h["step"] for h in second.history] == [4, 5, 6]
    chex.assert_trees_all_equal(jax.device_get(second.state), jax.device_get(straight.state))
    assert [h["loss"] for h in second.history] == [h["loss"] for h in straight.history[3:]]


def test_resume_with_changed_config_names_field(tmp_path):
    workdir = str(tmp_path / "run")
    run_tiny(workdir, steps=2)
    with pytest.raises(ValueError, match="optimizer.learning_rate"):
        run_tiny(workdir, steps=2, optimizer__learning_rate=1e-3)
    # cadence fields may change between restarts
    run_tiny(workdir, steps=2, logging__every_steps=2)


def test_checkpoints_every_n_keep_k(straight):
    ckpt = Checkpointer(straight.workdir, every_steps=2, keep=2)
    assert ckpt.all_steps() == [4, 6]
    assert not any(name.startswith("tmp") or "tmp" in name
                   for name in os.listdir(os.path.join(straight.workdir, "checkpoints")))
    ckpt.close()


def test_poisoned_batch_is_skipped_and_counted(tmp_path):
    result = run_tiny(str(tmp_path / "poison"), steps=4, poison_step=2)
    hist = {h["step"]: h for h in result.history}
    assert hist[3]["skipped"] == 1 and not math.isfinite(hist[3]["loss"])
    assert [hist[s]["skipped_steps"] for s in (1, 2, 3, 4)] == [0, 0, 1, 1]
    assert [hist[s]["consecutive_skips"] for s in (1, 2, 3, 4)] == [0, 0, 1, 0]
    assert int(result.state.skipped_steps) == 1
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(jax.device_get(result.state)))


def test_poisoned_step_leaves_state_unchanged():
    comps = tiny_components()
    opt = make_optimizer(learning_rate=1e-2, total_steps=10, warmup_steps=0)
    state = create_train_state(comps.params, opt, jax.random.PRNGKey(0))
    step = jax.jit(train_step_fn(comps.loss_fn, opt, ema_decay=0.9))
    batch = next(comps.train_batches(0, 0, 1))
    state1, m1 = step(state, batch)
    state2, m2 = step(state1, {"image": jnp.full_like(batch["image"], jnp.nan)})
    assert int(m1["skipped"]) == 0 and int(m2["skipped"]) == 1
    assert int(state2.step) == 2 and int(state2.skipped_steps) == 1
    for field in ("params", "opt_state", "ema_params"):
        chex.assert_trees_all_equal(getattr(state2, field), getattr(state1, field))
    assert not all(np.array_equal(a, b) for a, b in
                   zip(jax.tree.leaves(state1.params), jax.tree.leaves(state.params)))


def test_overflowing_update_is_skipped():
    """Finite loss and gradients, but lr * gradient overflows float32: the old check (loss and
    grad norm only) accepted params of inf. The reference is the update computed in float64."""
    comps = tiny_components()
    opt = optax.chain(optax.scale(-1e38), optax.scale(1e3))  # SGD at lr 1e41, in two factors
    state = create_train_state(comps.params, opt, jax.random.PRNGKey(0))
    step = jax.jit(train_step_fn(comps.loss_fn, opt, ema_decay=0.9))
    batch = next(comps.train_batches(0, 0, 1))
    grads = jax.grad(lambda p: jnp.mean(comps.loss_fn(p, batch, step_key(state))))(state.params)
    update64 = [np.asarray(p, np.float64) - 1e41 * np.asarray(g, np.float64)
                for p, g in zip(jax.tree.leaves(state.params), jax.tree.leaves(grads))]
    assert max(np.abs(u).max() for u in update64) > np.finfo(np.float32).max  # overflows
    new, metrics = step(state, batch)
    assert np.isfinite(float(metrics["loss"])) and np.isfinite(float(metrics["grad_norm"]))
    assert int(metrics["skipped"]) == 1 and int(new.consecutive_skips) == 1
    chex.assert_trees_all_equal(new.params, state.params)


def test_metrics_after_resume_are_not_duplicated(tmp_path):
    """A kill after the step-3 log but before checkpoint 4 left steps 3.. logged twice."""
    workdir = str(tmp_path / "dup")
    run_tiny(workdir, steps=6, stop_after=4)
    with open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": 5, "split": "train", "loss": 0.0}) + "\n")
        f.write('{"step": 6, "split": "tr')  # torn by the kill
    run_tiny(workdir, steps=6)
    assert [r["step"] for r in read_metrics(workdir, "train")] == [1, 2, 3, 4, 5, 6]
    assert read_metrics(workdir, "train")[4]["loss"] != 0.0
    assert not os.path.exists(os.path.join(workdir, "metrics.jsonl.tmp"))


def test_trim_metrics_names_a_corrupt_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "split": "train"}\nnot json\n{"step": 2, "split": "train"}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not JSON"):
        trim_metrics(str(path), 1)


def test_eval_is_weighted_mean_over_real_examples(straight):
    """Final eval = mean NLL over the 297 held-out digits (padding rows weight 0), recomputed
    here example by example with the same per-batch keys."""
    comps = tiny_components()
    key = jax.random.fold_in(jax.random.PRNGKey(0), 1)
    nll_fn = jax.jit(comps.nll_fn)
    nlls = []
    for i, batch in enumerate(comps.eval_batches()):
        n = int(batch["weight"].sum())
        nlls.append(np.asarray(nll_fn(straight.state.ema_params, batch,
                                      jax.random.fold_in(key, i)))[:n])
    nlls = np.concatenate(nlls)
    assert len(nlls) == 297
    final = straight.final_eval
    assert final["num_examples"] == 297
    np.testing.assert_allclose(final["nll_nats"], nlls.astype(np.float64).mean(), rtol=1e-5)
    np.testing.assert_allclose(final["bits_per_dim"], nlls.mean() / (64 * math.log(2)), rtol=1e-5)


def test_metrics_files(straight):
    train = read_metrics(straight.workdir, "train")
    assert [r["step"] for r in train] == list(range(1, 7))
    assert [r["loss"] for r in train] == [h["loss"] for h in straight.history]
    evals = read_metrics(straight.workdir, "eval")
    assert evals[-1]["bits_per_dim"] == straight.final_eval["bits_per_dim"]


def test_tensorboard_event_files(tmp_path):
    workdir = str(tmp_path / "tb")
    run_tiny(workdir, steps=2, logging__tensorboard=True)
    files = os.listdir(os.path.join(workdir, "tensorboard"))
    assert any(f.startswith("events.out.tfevents") for f in files)


def test_learning_rate_schedule_closed_form():
    sched = learning_rate_schedule(1.0, total_steps=110, warmup_steps=10, end_lr_ratio=0.1)
    assert float(sched(0)) == 0.0
    np.testing.assert_allclose(float(sched(5)), 0.5, rtol=1e-6)
    for s in (10, 35, 60, 110):
        expected = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 10) / 100))
        np.testing.assert_allclose(float(sched(s)), expected, rtol=1e-5)


def test_ema_follows_recursion():
    comps = tiny_components()
    opt = make_optimizer(learning_rate=1e-2, total_steps=10, warmup_steps=0)
    state = create_train_state(comps.params, opt, jax.random.PRNGKey(0))
    step = jax.jit(train_step_fn(comps.loss_fn, opt, ema_decay=0.7))
    batches = comps.train_batches(0, 0, 1)
    ema = jax.tree.map(np.asarray, comps.params)
    for s in range(12):
        state, _ = step(state, next(batches))
        d = min(0.7, (1 + s) / (10 + s))  # EMA warmup, then the configured decay
        ema = jax.tree.map(lambda e, p: d * e + (1 - d) * np.asarray(p, np.float64), ema, state.params)
    for a, b in zip(jax.tree.leaves(state.ema_params), jax.tree.leaves(ema)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ema_update({"a": jnp.ones(2)}, {"a": jnp.full(2, 3.0)}, 0.25)["a"], 2.5)

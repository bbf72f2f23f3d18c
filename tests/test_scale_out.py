"""Scaling past one device: parameter sharding strategies on a 2-D mesh (8 fake CPU devices in
one child process), gradient accumulation, bf16 mixed precision, activation checkpointing,
resume across mesh shapes, and their config validation."""
import copy
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

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


EIGHT_DEVICE_SCRIPT = """
    import tempfile
    import numpy as np
    from test_scale_out import scale_config, run_steps, tolerance_ratio
    from gen_jax.train import build, sharding as sh
    from gen_jax.train.checkpoint import Checkpointer
    from gen_jax.train.step import eval_step_fn, jit_eval_step

    results = {}
    for family in ("ar", "gaussian"):
        components = build.build_components(scale_config(family))
        ref_state, ref_losses = run_steps(components, family, 1, 1, "replicated")
        ref_params = jax.device_get(ref_state.params)
        batch = next(iter(components.eval_batches()))
        key = jax.random.PRNGKey(5)
        for strategy, model in (("fsdp", 1), ("fsdp_tp", 2)):
            state, losses = run_steps(components, family, 8, model, strategy)
            mesh = sh.make_mesh(8, model)
            evaluate = jit_eval_step(eval_step_fn(components.nll_fn), mesh, state.params, strategy)
            ref_mesh = sh.make_mesh(1)
            ref_eval = jit_eval_step(eval_step_fn(components.nll_fn), ref_mesh, ref_state.params)
            nll = float(evaluate(state.params, sh.global_batch(batch, mesh), key)[0])
            ref_nll = float(ref_eval(ref_state.params, sh.global_batch(batch, ref_mesh), key)[0])
            qkv = state.params["backbone"]["blocks"][0]["attn"]["qkv"]["kernel"]
            mu = state.opt_state[1][0].mu["backbone"]["blocks"][0]["attn"]["qkv"]["kernel"]
            results[f"{family}/{strategy}"] = dict(
                loss_ratio=tolerance_ratio(losses, ref_losses, rtol=1e-5, atol=0.0),
                param_ratio=max(tolerance_ratio(a, b, rtol=1e-4, atol=1e-6) for a, b in
                                zip(jax.tree.leaves(jax.device_get(state.params)),
                                    jax.tree.leaves(ref_params))),
                eval_ratio=tolerance_ratio(nll, ref_nll, rtol=1e-5, atol=0.0),
                full_shape=list(qkv.shape),
                shard_shapes=sorted({tuple(s.data.shape) for s in qkv.addressable_shards}),
                mu_shard_shapes=sorted({tuple(s.data.shape) for s in mu.addressable_shards}))
            if family == "ar" and strategy == "fsdp":
                saved = state
    # resume: saved on the 8x1 'fsdp' mesh, restored into a 4x2 'fsdp_tp' target
    workdir = tempfile.mkdtemp()
    checkpointer = Checkpointer(workdir, every_steps=1, keep=1)
    checkpointer.save(3, saved, {"config": "test"})
    checkpointer.close()
    components = build.build_components(scale_config("ar"))
    target, _ = run_steps(components, "ar", 8, 2, "fsdp_tp", steps=0)
    checkpointer = Checkpointer(workdir, every_steps=1, keep=1)
    restored = checkpointer.restore(3, target)
    checkpointer.close()
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), jax.device_get(restored),
                        jax.device_get(saved))
    placed = jax.tree.map(lambda a, b: a.sharding == b.sharding, restored, target)
    results["resume"] = dict(equal=all(jax.tree.leaves(same)),
                             target_shardings=all(jax.tree.leaves(placed)))
    print(json.dumps(results))
"""


def run_steps(components, family, num_devices, model_parallelism, strategy, steps=3):
    """(state, losses) after `steps` train steps of `components` on a (num_devices /
    model_parallelism, model_parallelism) mesh with parameter sharding `strategy`."""
    from gen_jax.train import sharding as sh
    from gen_jax.train.restore import optimizer_from_config
    from gen_jax.train.state import create_train_state
    from gen_jax.train.step import jit_train_step, place_state, train_step_fn
    config = scale_config(family)
    mesh = sh.make_mesh(num_devices, model_parallelism)
    optimizer, _ = optimizer_from_config(config)
    state = place_state(create_train_state(components.params, optimizer, jax.random.PRNGKey(1)),
                        mesh, strategy)
    step = jit_train_step(train_step_fn(components.loss_fn, optimizer,
                                        ema_decay=config.optimizer.ema_decay),
                          mesh, state, strategy)
    batches = components.train_batches(0, 0, 1)
    losses = []
    for _ in range(steps):
        state, metrics = step(state, sh.global_batch(next(batches), mesh))
        losses.append(float(metrics["loss"]))
    return state, losses


def tolerance_ratio(actual, expected, *, rtol, atol) -> float:
    """max |actual - expected| / (atol + rtol |expected|): <= 1 passes assert_allclose."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.size == 0:
        return 0.0
    return float(np.max(np.abs(actual - expected) / (atol + rtol * np.abs(expected) + 1e-300)))


@pytest.fixture(scope="module")
def eight_devices():
    """One child process on 8 fake CPU devices: AR and Gaussian digits models, 3 Adam steps
    under 'fsdp' (8x1 mesh) and 'fsdp_tp' (4x2), against 'replicated' on 1 device."""
    return run_on_fake_devices(EIGHT_DEVICE_SCRIPT)


@pytest.mark.parametrize("run", ["ar/fsdp", "ar/fsdp_tp", "gaussian/fsdp", "gaussian/fsdp_tp"])
def test_sharded_training_matches_one_device(eight_devices, run):
    """Losses within rtol 1e-5, params within rtol 1e-4 + atol 1e-6 after 3 Adam steps (only
    float reduction order differs), eval NLL on the same mesh within rtol 1e-5."""
    r = eight_devices[run]
    assert r["loss_ratio"] <= 1.0, r
    assert r["param_ratio"] <= 1.0, r
    assert r["eval_ratio"] <= 1.0, r


@pytest.mark.parametrize("run", ["ar/fsdp", "ar/fsdp_tp", "gaussian/fsdp", "gaussian/fsdp_tp"])
def test_each_device_holds_an_eighth_of_a_sharded_kernel(eight_devices, run):
    """The attention qkv kernel (d, 3d) and its Adam moment: fsdp splits its largest dim 3d over
    'data' (8); fsdp_tp splits 3d over 'model' (2), then d over 'data' (4): 1/8 per device."""
    r = eight_devices[run]
    d, three_d = r["full_shape"]
    expected = [d, three_d // 8] if run.endswith("/fsdp") else [d // 4, three_d // 2]
    assert r["shard_shapes"] == [expected] and r["mu_shard_shapes"] == [expected]


def test_resume_into_another_mesh_shape_is_exact(eight_devices):
    """A state saved under 'fsdp' on 8x1 restores bit for bit into a 'fsdp_tp' 4x2 target,
    with the target's shardings."""
    assert eight_devices["resume"] == dict(equal=True, target_shardings=True)


@pytest.fixture(scope="module")
def ar_components():
    return build.build_components(scale_config("ar"))


def test_gradient_accumulation_equals_full_batch(ar_components):
    """AR's loss ignores the key, so 4 microbatches of 4 give the 16-row batch's mean loss and
    gradient (rtol 1e-5, atol 1e-7: float summation order only)."""
    batch = next(iter(ar_components.train_batches(0, 0, 1)))
    key = jax.random.PRNGKey(0)
    full = jax.jit(lambda p, b: mean_loss_and_grad(ar_components.loss_fn, p, b, key))
    accumulated = jax.jit(lambda p, b: mean_loss_and_grad(ar_components.loss_fn, p, b, key, 4))
    (loss1, grads1), (loss4, grads4) = full(ar_components.params, batch), accumulated(
        ar_components.params, batch)
    np.testing.assert_allclose(loss4, loss1, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads4), jax.tree.leaves(grads1)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_microbatched_train_step_keeps_the_skip_semantics(ar_components):
    """A NaN in one microbatch makes the accumulated step non-finite: it is skipped."""
    from gen_jax.train.restore import optimizer_from_config
    from gen_jax.train.state import create_train_state
    from gen_jax.train.step import train_step_fn
    optimizer, _ = optimizer_from_config(scale_config("ar"))
    state = create_train_state(ar_components.params, optimizer, jax.random.PRNGKey(1))
    nan_loss = lambda p, b, k: ar_components.loss_fn(p, b, k) / b["scale"]  # noqa: E731
    step = jax.jit(train_step_fn(nan_loss, optimizer, ema_decay=0.9, microbatches=2))
    batch = dict(next(iter(ar_components.train_batches(0, 0, 1))),
                 scale=np.where(np.arange(16) == 3, 0.0, 1.0).astype(np.float32))
    new_state, metrics = step(state, batch)
    assert int(metrics["skipped"]) == 1 and int(new_state.step) == 1
    for a, b in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(a, b)


def test_remat_gives_identical_gradients():
    """nnx.remat per block recomputes the same forward: gradients equal to rtol 1e-6."""
    tokens = jax.random.randint(jax.random.PRNGKey(1), (4, 16), 0, 5)
    weights = jax.random.normal(jax.random.PRNGKey(2), (4, 16, 5))

    def grads(remat):
        model = families.build_model("ar", data_shape=(16,), num_levels=5, rngs=nnx.Rngs(0),
                                     d_model=16, num_heads=2, num_layers=1, remat=remat)
        view, params = families.ModelView.of(model)
        return jax.jit(jax.grad(lambda p: jnp.sum(view.apply(p, tokens) * weights)))(params)

    for a, b in zip(jax.tree.leaves(grads(True)), jax.tree.leaves(grads(False))):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def _extreme_uniform():
    """jax.random.uniform whose draws alternate between 0 and the largest float32 below 1 (or
    the bounds given): every diffusion time, mask draw and dequantization offset at its ends."""
    def uniform(key, shape=(), dtype=jnp.float32, minval=0.0, maxval=1.0):
        del key
        size = int(np.prod(shape))
        ends = jnp.where(jnp.arange(size) % 2 == 0, 0.0, jnp.nextafter(jnp.float32(1), 0))
        return (minval + (maxval - minval) * ends).reshape(shape).astype(dtype)
    return uniform


@pytest.mark.parametrize("family", FAMILIES)
def test_bfloat16_loss_is_finite_at_extreme_times(family, monkeypatch):
    """bf16 compute, every uniform draw of the loss at 0 or 1-: the loss is finite (so is the
    f32 one)."""
    config = scale_config(family, model__compute_dtype="bfloat16")
    components = build.build_components(config)
    batch = next(iter(components.train_batches(0, 0, 1)))
    monkeypatch.setattr(jax.random, "uniform", _extreme_uniform())
    loss = jax.jit(components.loss_fn)(components.params, batch, jax.random.PRNGKey(0))
    assert np.all(np.isfinite(loss)), loss
    f32 = build.build_components(scale_config(family))
    loss32 = jax.jit(f32.loss_fn)(f32.params, batch, jax.random.PRNGKey(0))
    assert np.all(np.isfinite(loss32)), loss32


def test_bfloat16_training_matches_float32_eval_nll(tmp_path):
    """AR, 8 steps in bf16 vs f32 from the same init and batches: the final eval NLL (always float32
    compute) agrees within 1% relative; the eval model of the bf16 run computes in float32."""
    family, results = "ar", {}
    for dtype in ("float32", "bfloat16"):
        config = scale_config(family, steps=8, model__compute_dtype=dtype, eval__max_batches=1)
        results[dtype] = train(config, str(tmp_path / dtype))
    bf16_view = build.build_components(scale_config(family, model__compute_dtype="bfloat16")).view
    assert bf16_view.module(results["bfloat16"].state.params).backbone.config.dtype == jnp.float32
    nll32, nll16 = (results[d].final_eval["nll_nats"] for d in ("float32", "bfloat16"))
    assert np.isfinite(nll16)
    np.testing.assert_allclose(nll16, nll32, rtol=1e-2)


@pytest.mark.parametrize("field, value, match", [
    ("mesh__param_sharding", "zero3", "config.mesh.param_sharding"),
    ("mesh__model_parallelism", 0, "config.mesh.model_parallelism"),
    ("mesh__model_parallelism", 2, "config.mesh.model_parallelism"),
    ("train__microbatches", 0, "config.train.microbatches"),
    ("train__microbatches", 3, "config.train.microbatches"),
    ("model__compute_dtype", "float16", "config.model.compute_dtype"),
    ("model__remat", 1, "config.model.remat"),
])
def test_bad_scale_fields_are_named(field, value, match):
    """(Set through a plain dict: a ConfigDict would refuse a value of another type.)"""
    fields = scale_config("ar", mesh__num_devices=1).to_dict()
    section, name = field.split("__")
    fields[section][name] = value
    with pytest.raises(ValueError, match=match):
        validate_config(ml_collections.ConfigDict(fields))


def test_model_parallelism_needs_fsdp_tp_and_a_divisor():
    """On 8 fake devices: a 'model' axis under 'fsdp', or one that does not divide the devices,
    is refused naming config.mesh.model_parallelism; 4x2 'fsdp_tp' passes."""
    result = run_on_fake_devices("""
        from test_scale_out import scale_config
        from gen_jax.train.config import validate_config
        errors = []
        for strategy, model in (("fsdp", 2), ("fsdp_tp", 3)):
            try:
                validate_config(scale_config("ar", mesh__param_sharding=strategy,
                                             mesh__model_parallelism=model))
            except ValueError as e:
                errors.append(str(e))
        validate_config(scale_config("ar", mesh__param_sharding="fsdp_tp",
                                     mesh__model_parallelism=2))
        print(json.dumps(errors))
    """)
    assert len(result) == 2 and all("config.mesh.model_parallelism" in e for e in result)


def test_accelerator_benchmark_smoke(tmp_path):
    """benchmarks/accelerator.py --smoke runs both models on CPU and reports finite numbers
    (MFU only on devices with a known peak)."""
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    try:
        import accelerator
    finally:
        sys.path.remove(os.path.join(REPO, "benchmarks"))
    results = accelerator.main(["--smoke", "--json", str(tmp_path / "bench.json")])
    assert [r["model"] for r in results] == ["gpt2", "dit"]
    assert all(np.isfinite(r["final_loss"]) and r["model_tflops_per_step"] > 0 for r in results)
    assert accelerator.peak_flops("NVIDIA H200") == 989e12 and accelerator.peak_flops("cpu") is None


def test_runs_saved_before_the_scaling_fields_resume_with_their_old_behaviour():
    """A saved config without compute_dtype / remat / microbatches / model_parallelism reads as
    float32, no remat, 1 microbatch, no tensor parallelism; any other value is a mismatch."""
    from experiments.configs.base import get_base_config
    from gen_jax.train.config import ADDED_FIELDS, check_resume_compatible, with_added_fields

    current = get_base_config("ar", "digits").to_dict()
    old = copy.deepcopy(current)
    for name in ADDED_FIELDS:
        section, field = name.split(".")
        del old[section][field]
    check_resume_compatible(old, current)
    assert with_added_fields(old) == current
    current["model"]["compute_dtype"] = "bfloat16"
    with pytest.raises(ValueError, match="model.compute_dtype"):
        check_resume_compatible(old, current)
    current["model"]["compute_dtype"] = "float32"
    current["train"]["microbatches"] = 2
    with pytest.raises(ValueError, match="train.microbatches"):
        check_resume_compatible(old, current)


def test_each_process_feeds_its_own_slice_of_every_estimator_batch():
    """Simulated processes: the slices are disjoint, in order, and together the global batch."""
    from gen_jax.train.sharding import process_rows

    rows = np.arange(10, 34) % 17
    for count in (1, 2, 4, 8):
        parts = [process_rows(rows, i, count) for i in range(count)]
        assert all(len(p) == len(rows) // count for p in parts)
        np.testing.assert_array_equal(np.concatenate(parts), rows)
    with pytest.raises(ValueError, match="does not split"):
        process_rows(rows, 0, 5)
    with pytest.raises(ValueError, match="process_index"):
        process_rows(rows, 2, 2)

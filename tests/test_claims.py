"""The claims experiments (experiments/claims): FLOP and epoch accounting against hand counts,
the curve helpers, and the smoke configurations of data_constrained, steps and
generation_speed end to end (results.json keys, the tables, the plots, and numbers that could be
wrong: epochs, NFE, tokens/s)."""
import json
import math
import os

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.claims import report
from experiments.claims.data_constrained import run_data_constrained
from experiments.claims.epoch_accounting import check_budget, epochs_seen, token_subset
from experiments.claims.generation_speed import run_generation_speed
from experiments.claims.steps import run_steps, step_fields
from experiments.configs import data_constrained as dc_config
from experiments.configs import generation_speed as gs_config
from experiments.configs import steps as steps_config
from gen_jax import data as data_lib
from gen_jax.models.flops import compiled_flops, matmul_params, transformer_train_flops
from gen_jax.models.transformer import TransformerConfig


def test_flops_match_a_hand_count():
    # d = 8, one layer, MLP 4x, vocab 5: N = 4·8·8 + 2·8·32 + 8·5 = 256 + 512 + 40 = 808.
    config = TransformerConfig(num_layers=1, num_heads=2, d_model=8, mlp_ratio=4.0)
    assert matmul_params(config, 5) == 808
    # 6·N·L·B = 6·808·3·2 = 29088; attention 12·L²·d·depth·B = 12·9·8·1·2 = 1728.
    assert transformer_train_flops(config, 3, 2, 5) == 29088 + 1728
    # XLA's count of one matmul: 2·m·n·k.
    assert compiled_flops(lambda a, b: a @ b, jnp.ones((4, 8)), jnp.ones((8, 3))) == 192.0
    with pytest.raises(ValueError, match="seq_len"):
        transformer_train_flops(config, 0, 2, 5)


def test_token_subset_and_epochs_are_exact():
    split = data_lib.load("markov", "train", num_examples=64, seq_len=16)
    subset = token_subset(split, 256, batch_size=4)  # 16 sequences of 16 tokens
    tokens = subset.get_batch(np.arange(len(subset)))["tokens"]
    assert tokens.size == 256 and len(subset) == 16
    np.testing.assert_array_equal(tokens, split.get_batch(np.arange(16))["tokens"])
    # 12 steps of 4 sequences = 3 passes: every sequence seen exactly 3 times.
    iterator = data_lib.BatchIterator(subset, 4, seed=0)
    seen = np.concatenate([iterator.indices_at(s) for s in range(12)])
    np.testing.assert_array_equal(np.bincount(seen, minlength=16), np.full(16, 3))
    assert epochs_seen(12, 4, 16, 256) == 3.0
    with pytest.raises(ValueError, match="unique_tokens"):
        check_budget(250, 16, 4)
    with pytest.raises(ValueError, match="unique_tokens"):
        token_subset(split, 16 * 4 * 32, batch_size=4)  # 128 sequences; the split has 64


def test_crossings_and_flattening_on_hand_curves():
    assert report.crossings([1, 2, 3], [3.0, 1.0, 1.0], [2.0, 2.0, 2.0]) == [1.5]
    assert report.crossings([1, 2], [1.0, 1.0], [2.0, 2.0]) == []
    # Improves by 1.0 from 4 to 8, then by 0.05 (< SE 0.1): flattens at 8.
    assert report.flattening_point([4, 8, 16], [2.0, 1.0, 0.95], [0.07, 0.07, 0.07]) == 8.0
    assert report.flattening_point([4, 8, 16], [3.0, 2.0, 1.0], [0.01] * 3) == 16.0


def test_step_grids_are_read_from_the_config_not_the_name():
    config = steps_config.get_config().model_config
    assert step_fields(config.masked) == ["steps"]
    assert step_fields(config.gaussian) == ["nfe"]
    assert sorted(step_fields(config.flow)) == ["dpm_steps", "euler_steps", "heun_steps"]
    assert step_fields(config.ar) == []


def test_presets_are_named_in_errors():
    for module in (dc_config, steps_config, gs_config):
        with pytest.raises(ValueError, match="preset"):
            module.get_config("tpu")


@pytest.fixture(scope="module")
def data_constrained_run(tmp_path_factory):
    cfg = dc_config.smoke(dc_config.get_config())
    cfg.families = ("ar", "masked")
    workdir = str(tmp_path_factory.mktemp("data_constrained"))
    return cfg, workdir, run_data_constrained(cfg, workdir, "test")


def test_data_constrained_smoke_reports_exact_epochs(data_constrained_run):
    cfg, workdir, results = data_constrained_run
    m = cfg.model_config
    assert {"runs", "summary", "crossings", "reading", "dataset", "wall_seconds"} <= set(results)
    assert len(results["runs"]) == len(cfg.unique_tokens) * 2
    entropy = results["dataset"]["entropy_bits_per_token"]
    for run in results["runs"]:
        steps = [p["step"] for p in run["curve"]]
        assert steps == list(range(m.eval.every_steps, m.train.steps + 1, m.eval.every_steps))
        for p in run["curve"]:
            assert p["epochs"] == p["step"] * m.train.batch_size * 32 / run["unique_tokens"]
            assert p["flops"] == p["step"] * run["flops_per_step"]
            assert math.isfinite(p["bits"]) and p["bits"] > entropy  # barely trained
        # XLA's count and the 6ND + attention convention agree to within a factor of 2.
        assert 0.5 < run["flops_per_step"] / run["analytic_flops_per_step"] < 2.0
    for c in results["crossings"]:
        assert c["family"] == "masked" and c["reference"] == "ar"
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["summary"] == results["summary"]
    md = open(os.path.join(workdir, "results.md")).read()
    assert "| unique tokens | family |" in md and "## Reading" in md
    for png in ("validation_vs_epochs.png", "best_vs_flops.png"):
        assert os.path.getsize(os.path.join(workdir, png)) > 1000


def test_data_constrained_rerun_reuses_finished_runs(data_constrained_run):
    cfg, workdir, results = data_constrained_run
    again = run_data_constrained(cfg, workdir, "test")
    assert [r["curve"] for r in again["runs"]] == [r["curve"] for r in results["runs"]]
    assert [r["train_seconds"] for r in again["runs"]] == [r["train_seconds"] for r in results["runs"]]


def test_steps_smoke_reports_the_requested_nfe(tmp_path):
    cfg = steps_config.smoke(steps_config.get_config())
    cfg.families = ("masked",)
    results = run_steps(cfg, str(tmp_path), "test")
    fixed = [r for r in results["quality"] if r["requested_steps"] is not None]
    assert sorted(r["requested_steps"] for r in fixed) == [4, 8]
    for r in fixed:
        assert r["nfe"] == r["requested_steps"]  # masked ancestral: one call per step
        assert math.isfinite(r["kid"]) and math.isfinite(r["fd"]) and r["kid_se"] > 0
    assert sorted(e["steps"] for e in results["step_elbos"]) == [4, 8]
    assert all(math.isfinite(e["mean"]) and e["se"] > 0 for e in results["step_elbos"])
    assert {f["flattens_at_nfe"] for f in results["flattening"]} <= {4.0, 8.0}
    md = open(tmp_path / "results.md").read()
    assert "| model | sampler | setting | NFE |" in md
    assert os.path.getsize(tmp_path / "quality_vs_nfe.png") > 1000
    assert os.path.getsize(tmp_path / "elbo_vs_steps.png") > 1000


def test_generation_speed_smoke_counts_calls_and_tokens(tmp_path):
    cfg = gs_config.smoke(gs_config.get_config())
    results = run_generation_speed(cfg, str(tmp_path), "test")
    rows = results["rows"]
    assert len(rows) == len(cfg.lengths) * len(cfg.batch_sizes) * 3  # ar; masked fixed and L
    for r in rows:
        if r["family"] == "ar":
            assert r["nfe"] == r["length"]
        elif r["curve"].endswith("L steps"):
            assert r["nfe"] == r["length"]
        else:
            assert r["nfe"] == cfg.fixed_steps
        assert len(r["round_seconds"]) == cfg.rounds
        assert r["median_seconds"] == float(np.median(r["round_seconds"]))
        assert r["tokens_per_second"] == r["batch_size"] * r["length"] / r["median_seconds"]
    assert set(results["parameters"]) == {"ar", "masked"}
    md = open(tmp_path / "results.md").read()
    assert "| L | batch | sampler |" in md
    for b in cfg.batch_sizes:
        assert os.path.getsize(tmp_path / f"seconds_vs_length_batch{b}.png") > 1000

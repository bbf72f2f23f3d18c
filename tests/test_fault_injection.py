"""Fault injection on the training loop (tiny model of test_train_loop.py): SIGKILL during
training and during an asynchronous save, flipped / truncated / emptied checkpoint bytes, a
changed data field or data file, and divergence. Each fault must end either in a run that is
bitwise identical to an uninterrupted one, or in a loud error naming what happened."""
import dataclasses
import glob
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import chex
import jax
import numpy as np
import pytest

from gen_jax.data import load
from gen_jax.data import fingerprint as data_fingerprint
from gen_jax.train.checkpoint import CheckpointError, Checkpointer, NonFiniteStateError
from gen_jax.train.loop import DivergenceError
from gen_jax.train import loop
from gen_jax.train.metrics import read_metrics
from test_train_loop import run_tiny, tiny_components, tiny_config

STEPS = 8
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS_DIR)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return run_tiny(str(tmp_path_factory.mktemp("straight")), steps=STEPS)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A workdir preempted after 6 of 8 steps: checkpoints 4 and 6 (keep=2)."""
    workdir = str(tmp_path_factory.mktemp("stopped") / "run")
    run_tiny(workdir, steps=STEPS, stop_after=6)
    return workdir


def copy_of(workdir, tmp_path):
    target = str(tmp_path / "run")
    shutil.copytree(workdir, target)
    return target


def assert_same_as_straight(result, straight):
    chex.assert_trees_all_equal(jax.device_get(result.state), jax.device_get(straight.state))
    train = read_metrics(result.workdir, "train")
    assert [r["step"] for r in train] == list(range(1, STEPS + 1))  # each step logged once
    assert [r["loss"] for r in train] == [h["loss"] for h in straight.history]


# ---- SIGKILL (subprocesses) ------------------------------------------------------------

_KILL_SCRIPT = textwrap.dedent("""
    import itertools, os, sys, time
    sys.path.insert(0, {tests!r})
    import jax
    jax.config.update("jax_compilation_cache_dir", {cache!r})
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    from orbax.checkpoint._src.path import atomicity
    from gen_jax.train import loop
    from test_train_loop import tiny_components, tiny_config
    mode, workdir, marker = sys.argv[1:4]

    def hang():
        open(marker, "w").close()
        time.sleep(600)

    comps = tiny_components()
    if mode == "train":  # hang while fetching the batch of step 6 (steps 1-5 done and logged)
        batches = comps.train_batches
        def train_batches(start, index, count):
            for position, batch in zip(itertools.count(start), batches(start, index, count)):
                if position == 5:
                    hang()
                yield batch
        comps.train_batches = train_batches
    else:  # hang in the background commit of checkpoint 4: its files are written, not renamed
        finalize = atomicity.AtomicRenameTemporaryPath.finalize
        async def slow_finalize(self, *args, **kwargs):
            if self._final_path.name == "4":
                hang()
            return await finalize(self, *args, **kwargs)
        atomicity.AtomicRenameTemporaryPath.finalize = slow_finalize
    loop.run(tiny_config({steps}), workdir, comps)
""")


def kill_while(mode, workdir, tmp_path):
    marker = str(tmp_path / "marker")
    script = _KILL_SCRIPT.format(tests=TESTS_DIR, cache=os.path.join(ROOT, ".jax_cache"),
                                 steps=STEPS)
    proc = subprocess.Popen([sys.executable, "-c", script, mode, workdir, marker], cwd=ROOT,
                            env=dict(os.environ, JAX_PLATFORMS="cpu"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not os.path.exists(marker):
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the subprocess never reached the fault"
            time.sleep(0.05)
        time.sleep(0.3)  # let the other thread run on (training continues during a save)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_mid_training_resumes_bitwise(straight, tmp_path):
    workdir = str(tmp_path / "run")
    kill_while("train", workdir, tmp_path)
    assert [r["step"] for r in read_metrics(workdir, "train")] == [1, 2, 3, 4, 5]
    assert_same_as_straight(run_tiny(workdir, steps=STEPS), straight)


def test_sigkill_mid_save_resumes_bitwise(straight, tmp_path):
    workdir = str(tmp_path / "run")
    kill_while("save", workdir, tmp_path)
    names = os.listdir(os.path.join(workdir, "checkpoints"))
    assert "4" not in names and any(n.startswith("4.") for n in names), names  # the torn save
    assert len(read_metrics(workdir, "train")) >= 4  # logged past the last finished checkpoint
    result = run_tiny(workdir, steps=STEPS)
    assert_same_as_straight(result, straight)
    ckpt = Checkpointer(workdir, every_steps=2, keep=2)
    assert ckpt.all_steps() == [6, 8]
    ckpt.close()


# ---- damaged checkpoint files ------------------------------------------------------------

def state_files(workdir, step):
    files = [f for f in glob.glob(os.path.join(workdir, "checkpoints", str(step), "state", "**"),
                                  recursive=True) if os.path.isfile(f)]
    return sorted(files, key=os.path.getsize)


def flip_bytes(path):
    data = bytearray(open(path, "rb").read())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "config"])
def test_damaged_newest_checkpoint_falls_back(damage, stopped, straight, tmp_path, caplog):
    """Flipped bytes (same size) restore silently without a checksum; a truncated or emptied
    file crashed in tensorstore; an edited config JSON read as a config mismatch. Now: a warning
    naming step 6, a resume from step 4, the same final state as an uninterrupted run, and
    step 6 kept aside for inspection."""
    workdir = copy_of(stopped, tmp_path)
    largest = state_files(workdir, 6)[-1]
    if damage == "flip":
        size = os.path.getsize(largest)
        flip_bytes(largest)
        assert os.path.getsize(largest) == size
    elif damage == "truncate":
        os.truncate(largest, os.path.getsize(largest) // 2)
    elif damage == "empty":
        for path in state_files(workdir, 6):
            os.truncate(path, 0)
    else:  # still valid JSON, one value changed
        path = os.path.join(workdir, "checkpoints", "6", "config", "metadata")
        text = open(path).read()
        assert '"steps": 8' in text
        open(path, "w").write(text.replace('"steps": 8', '"steps": 9'))
    with caplog.at_level(logging.WARNING):
        result = run_tiny(workdir, steps=STEPS)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "skipping checkpoint 6" in warning
    assert {"flip": "damaged: the sha256 of its arrays", "config": "does not match its checksum"
            }.get(damage, "cannot be read") in warning
    assert [h["step"] for h in result.history] == [5, 6, 7, 8]
    assert_same_as_straight(result, straight)
    assert os.listdir(os.path.join(workdir, "checkpoints_damaged")) == ["6"]


def test_no_good_checkpoint_fails_naming_directory_and_steps(stopped, tmp_path):
    workdir = copy_of(stopped, tmp_path)
    for step in (4, 6):
        flip_bytes(state_files(workdir, step)[-1])
    with pytest.raises(CheckpointError, match=r"no checkpoint in .*checkpoints could be "
                                              r"restored \(tried steps \[6, 4\]"):
        run_tiny(workdir, steps=STEPS)


def test_non_finite_state_is_never_saved(tmp_path):
    result = run_tiny(str(tmp_path / "run"), steps=2)
    ckpt = Checkpointer(str(tmp_path / "run"), every_steps=2, keep=2)
    bad = dataclasses.replace(result.state,
                              params=jax.tree.map(lambda p: p * np.nan, result.state.params))
    with pytest.raises(NonFiniteStateError, match=r"refusing to save checkpoint 4: "
                                                  r"state\['params'\].*NaN or inf"):
        ckpt.save(4, bad, {})
    ckpt.close()
    assert Checkpointer(str(tmp_path / "run"), every_steps=2, keep=2).all_steps() == [2]


# ---- changed data ------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("train_split", "test"), ("eval_split", "train"),
                                         ("data_dir", "/elsewhere"), ("tfds_dir", "/other")])
def test_changed_data_field_is_named(field, value, stopped, tmp_path):
    """Resuming with --config.data.train_split=test silently trained on the test split."""
    workdir = copy_of(stopped, tmp_path)
    with pytest.raises(ValueError, match=rf"config mismatch on resume: config.data.{field} was"):
        run_tiny(workdir, steps=STEPS, **{f"data__{field}": value})


def test_stop_threshold_may_change_on_resume(stopped, straight, tmp_path):
    workdir = copy_of(stopped, tmp_path)
    assert_same_as_straight(run_tiny(workdir, steps=STEPS, train__max_consecutive_skips=3),
                            straight)


def test_changed_data_file_under_same_path_is_caught(tmp_path, monkeypatch):
    """Same config, same path, different bytes: only the fingerprint can tell."""
    monkeypatch.setenv("GEN_JAX_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "corpus.txt"

    def components():
        comps = tiny_components()
        comps.data_fingerprint = {
            split: data_fingerprint(load("text_file", split, path=str(path), seq_len=8))
            for split in ("train", "validation")}
        return comps

    path.write_text("the quick brown fox jumps over the lazy dog\n" * 20, encoding="utf-8")
    workdir = str(tmp_path / "run")
    loop.run(tiny_config(STEPS), workdir, components(), stop_after=2)
    path.write_text("the quick brown fox jumps over the lazy cat\n" * 20, encoding="utf-8")
    with pytest.raises(ValueError, match="data mismatch on resume: the train split"):
        loop.run(tiny_config(STEPS), workdir, components())


# ---- divergence --------------------------------------------------------------------------

def test_divergence_stops_and_keeps_the_last_finite_checkpoint(tmp_path):
    """learning_rate=1e30: the old loop skipped nearly every step, saved infinite params over
    the good checkpoints and exited 0 with 'final eval: nan'."""
    workdir = str(tmp_path / "run")
    with pytest.raises(DivergenceError) as info:
        run_tiny(workdir, steps=40, optimizer__learning_rate=1e30, train__max_consecutive_skips=5)
    message = str(info.value)
    assert "5 consecutive skipped steps" in message and "max_consecutive_skips=5" in message
    ckpt = Checkpointer(workdir, every_steps=2, keep=2)
    steps = ckpt.all_steps()
    assert f"last good checkpoint is step {steps[-1]}" in message
    assert steps[-1] <= 8  # stopped within max_consecutive_skips + 1 steps of going bad
    target = run_tiny(str(tmp_path / "fresh"), steps=40, stop_after=0,
                      optimizer__learning_rate=1e30).state
    for step in steps:
        state = ckpt.restore(step, target)
        assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(jax.device_get(state)))
    ckpt.close()
    train = read_metrics(workdir, "train")
    assert train[-1]["consecutive_skips"] == 5 and train[-1]["skipped_steps"] >= 5
    assert not read_metrics(workdir, "eval")  # no 'final eval: nan'
    assert math.isfinite(train[0]["loss"])

"""The training loop: `train(config, workdir)` for any registered family, built on `run(...)`,
which trains any model given as `Components` (data + pure functions, see components.py).

Per step: the host batch at data position `step` (a pure function of (seed, step), so a resumed
run sees the same batches), placed as a global array sharded over 'data', one jitted
`train_step`. Every `logging.every_steps`: metrics to tqdm / JSONL / TensorBoard (the only host
sync). Every `checkpoint.every_steps` and at the end: an orbax checkpoint. Every
`eval.every_steps` (and always at the end): bits/dim on the held-out split. Every
`sample.every_steps` and at the end (never when 0): a PNG grid or a text file of samples.

Failures are loud: a resume checks the config's run-defining fields and the data fingerprint,
falls back past damaged checkpoints (checkpoint.py), and a run whose last
`train.max_consecutive_skips` steps were all skipped (non-finite) stops with DivergenceError
without saving; a state with NaN / inf is never saved.
"""
import dataclasses
import json
import os
import time
from typing import Iterable, Optional

import jax
from tqdm import tqdm

from gen_jax.core.units import nats_to_bits_per_dim
from gen_jax.train import sharding as sharding_lib
from gen_jax.train.checkpoint import Checkpointer, NonFiniteStateError
from gen_jax.train.build import build_components
from gen_jax.train.components import Components
from gen_jax.train.config import check_data_fingerprint, check_resume_compatible, validate_config
from gen_jax.train.metrics import MetricsWriter
from gen_jax.train.restore import initial_state, optimizer_from_config
from gen_jax.train.state import TrainState
from gen_jax.train.step import (eval_step_fn, jit_eval_step, jit_train_step,
                                train_step_fn)

_NON_FINITE = "the loss, gradients or updated params were NaN / inf"


class DivergenceError(RuntimeError):
    """Training stopped: too many consecutive non-finite steps (or a non-finite state)."""


@dataclasses.dataclass
class TrainResult:
    """state: final TrainState. history: logged train metrics (dicts with 'step').
    evals: eval records ({'step', 'nll_nats', 'bits_per_dim', 'num_examples'}), last = final.
    sample_files: files written by the sampler. workdir: the run directory."""
    state: TrainState
    history: list
    evals: list
    sample_files: list
    workdir: str

    @property
    def final_eval(self) -> Optional[dict]:
        return self.evals[-1] if self.evals else None


def _config_dict(config) -> dict:
    """JSON-normalised plain dict of a ConfigDict (tuples -> lists, as stored in checkpoints)."""
    return json.loads(json.dumps(config.to_dict()))


def evaluate(eval_step, params, batches: Iterable[dict], mesh, key, max_batches: int = 0) -> dict:
    """Weighted mean NLL over `batches` (nats, and the count of real examples). `batches` are
    host-local slices of global batches with a 'weight' field; `key` is folded with the batch
    index."""
    total, count = 0.0, 0.0
    for i, batch in enumerate(batches):
        if max_batches and i >= max_batches:
            break
        s, w = eval_step(params, sharding_lib.global_batch(batch, mesh), jax.random.fold_in(key, i))
        total += float(s)
        count += float(w)
    if count == 0:
        raise ValueError("evaluation saw no examples (empty eval split?)")
    return dict(nll_nats=total / count, num_examples=int(count))


def run(config, workdir: str, components: Components, *, stop_after: Optional[int] = None,
        validate: bool = True) -> TrainResult:
    """Train `components` as configured; resume from `workdir` if it holds a checkpoint.

    stop_after: stop (with a checkpoint) once this many total steps are done, as if preempted;
    a later call with the same config continues to `config.train.steps`.
    validate: check the config's fields first (not the dataset name: `components` bring their
    own data).
    """
    if validate:
        validate_config(config, known_datasets=(config.data.name,))
    os.makedirs(workdir, exist_ok=True)
    total_steps = config.train.steps
    last_step = total_steps if stop_after is None else min(stop_after, total_steps)
    is_main = jax.process_index() == 0
    mesh = sharding_lib.make_mesh(config.mesh.num_devices, config.mesh.model_parallelism)
    strategy = config.mesh.param_sharding
    opt_cfg = config.optimizer
    optimizer, schedule = optimizer_from_config(config)
    seed_key = jax.random.PRNGKey(config.seed)
    state = initial_state(config, components, optimizer, mesh)

    config_dict = _config_dict(config)
    checkpointer = Checkpointer(workdir, every_steps=config.checkpoint.every_steps,
                                keep=config.checkpoint.keep)

    def check_checkpoint(saved_config, saved_fingerprint):
        check_resume_compatible(saved_config, config_dict)
        check_data_fingerprint(saved_fingerprint, components.data_fingerprint)

    try:
        restored = checkpointer.restore_latest(state, check_checkpoint)
    except BaseException:
        checkpointer.close()
        raise
    if restored is not None:
        state = restored
    start_step = int(jax.device_get(state.step))
    max_skips = config.train.max_consecutive_skips

    def diverged(step, consecutive, skipped, why):
        last = checkpointer.latest_step()
        good = (f"the last good checkpoint is step {last} in {checkpointer.directory}"
                if last is not None else "no checkpoint was saved")
        return DivergenceError(
            f"training diverged at step {step}: {why} ({consecutive} consecutive skipped steps, "
            f"{skipped} in total; config.train.max_consecutive_skips={max_skips}); {good}. "
            f"Rerun in a new workdir with a lower config.optimizer.learning_rate (or more "
            f"warmup_steps, a smaller grad_clip_norm): optimizer fields cannot change on resume")

    def save(step):
        consecutive, skipped = (int(v) for v in jax.device_get(
            (state.consecutive_skips, state.skipped_steps)))
        if consecutive >= max_skips:
            raise diverged(step, consecutive, skipped, _NON_FINITE)
        try:
            checkpointer.save(step, state, config_dict, components.data_fingerprint)
        except NonFiniteStateError as e:
            raise diverged(step, consecutive, skipped, str(e)) from None

    train_step = jit_train_step(
        train_step_fn(components.loss_fn, optimizer, ema_decay=opt_cfg.ema_decay,
                      learning_rate_fn=schedule, microbatches=config.train.microbatches),
        mesh, state, strategy)
    eval_step = None
    if components.nll_fn is not None and components.eval_batches is not None:
        eval_step = jit_eval_step(eval_step_fn(components.nll_fn), mesh, state.params, strategy)
    eval_key = jax.random.fold_in(seed_key, 1)
    sample_key = jax.random.fold_in(seed_key, 2)

    writer = MetricsWriter(workdir, tensorboard=config.logging.tensorboard, enabled=is_main,
                           start_step=start_step)
    history, evals, sample_files = [], [], []

    def do_eval(step):
        params = state.ema_params if config.eval.use_ema else state.params
        result = evaluate(eval_step, params, components.eval_batches(), mesh, eval_key,
                          config.eval.max_batches)
        result["bits_per_dim"] = float(nats_to_bits_per_dim(result["nll_nats"], components.num_dims))
        evals.append(dict(step=step, **writer.write(step, "eval", result)))

    def do_sample(step):
        params = state.ema_params if config.eval.use_ema else state.params
        samples = jax.device_get(components.sample_fn(params, jax.random.fold_in(sample_key, step),
                                                      config.sample.num_samples))
        if is_main:
            stem = os.path.join(workdir, "samples", f"step_{step:08d}")
            sample_files.append(components.write_samples(samples, stem))

    batches = iter(components.train_batches(start_step, jax.process_index(), jax.process_count()))
    progress = tqdm(total=total_steps, initial=start_step, dynamic_ncols=True,
                    disable=not (is_main and config.logging.progress_bar), desc="train")
    interval_start, interval_step = time.perf_counter(), start_step
    previous = None  # the last step's counters: read one step late, so dispatch runs ahead
    try:
        for step in range(start_step + 1, last_step + 1):
            state, metrics = train_step(state, sharding_lib.global_batch(next(batches), mesh))
            progress.update(1)
            if previous is not None:
                consecutive, skipped = (int(v) for v in jax.device_get(previous))
                if consecutive >= max_skips:
                    raise diverged(step - 1, consecutive, skipped, _NON_FINITE)
            previous = (metrics["consecutive_skips"], metrics["skipped_steps"])
            if step % config.logging.every_steps == 0 or step == last_step:
                now = time.perf_counter()
                metrics = dict(metrics, steps_per_sec=(step - interval_step) / (now - interval_start))
                values = writer.write(step, "train", metrics)
                history.append(dict(step=step, **values))
                progress.set_postfix(loss=f"{values['loss']:.4g}", refresh=False)
                interval_start, interval_step = now, step
            if checkpointer.should_save(step) or step == last_step:
                save(step)
            finished = step == total_steps
            if eval_step is not None and (finished or (config.eval.every_steps
                                                       and step % config.eval.every_steps == 0)):
                do_eval(step)
            if components.sample_fn is not None and config.sample.every_steps and (
                    finished or step % config.sample.every_steps == 0):
                do_sample(step)
        if start_step == last_step:
            save(last_step)
            if eval_step is not None and last_step == total_steps:
                do_eval(last_step)
    finally:
        progress.close()
        checkpointer.close()
        writer.close()
    return TrainResult(state=state, history=history, evals=evals, sample_files=sample_files,
                       workdir=workdir)


def train(config, workdir: str, *, stop_after: Optional[int] = None) -> TrainResult:
    """Validate `config`, build its data / model / objective (`build.build_components`) and
    run the loop in `workdir` (resuming if it holds checkpoints). Returns the final state and
    the train / eval records; the eval records hold bits/dim on `config.data.eval_split`."""
    sharding_lib.maybe_initialize_distributed(  # must precede every other JAX call
        enabled=config.distributed.initialize,
        coordinator_address=config.distributed.coordinator_address,
        num_processes=config.distributed.num_processes, process_id=config.distributed.process_id)
    validate_config(config)
    return run(config, workdir, build_components(config), stop_after=stop_after, validate=False)

"""Checkpoints with orbax: the full TrainState plus the run's config, the fingerprint of its data
and a sha256 checksum of the state, every N steps and at the end, keeping the latest K.

Orbax writes each step to a temporary directory and renames it when complete, so an
interrupted save never looks like a checkpoint. A save refuses a state with NaN / inf (so a
diverged state never rotates a good checkpoint out), and a restore recomputes the checksum from
the restored arrays: flipped bytes, truncated or emptied files fail it (or fail to read), and
`restore_latest` then falls back to the previous checkpoint, moving the damaged one aside.
"""
import hashlib
import json
import logging
import os
import shutil
from typing import Callable, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from gen_jax.train.state import TrainState

DAMAGED_DIR = "checkpoints_damaged"
_log = logging.getLogger(__name__)


class NonFiniteStateError(ValueError):
    """A save was refused: the state holds NaN or inf."""


class CheckpointError(RuntimeError):
    """No checkpoint of a workdir that has some could be restored."""


class DamagedCheckpointError(CheckpointError):
    """One checkpoint failed to read or its checksum did not match."""


def _as_dict(state: TrainState) -> dict:
    return dict(step=state.step, params=state.params, opt_state=state.opt_state,
                ema_params=state.ema_params, rng=state.rng, skipped_steps=state.skipped_steps,
                consecutive_skips=state.consecutive_skips)


def _host_array(x) -> np.ndarray:
    """A jax array (single- or multi-process; replicated if multi-process) as numpy."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(x.addressable_shards[0].data)
    return np.asarray(jax.device_get(x))


def state_checksum(tree) -> str:
    """sha256 (hex) over every leaf's path, dtype, shape and bytes, in tree order."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        leaf = np.ascontiguousarray(_host_array(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}|{leaf.dtype.str}|{leaf.shape}|".encode())
        digest.update(leaf.tobytes())
    return digest.hexdigest()


def _meta_checksum(config: dict, data_fingerprint: Optional[dict]) -> str:
    """sha256 (hex) of the canonical JSON of the config and the data fingerprint."""
    text = json.dumps({"config": config, "data": data_fingerprint}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def first_non_finite(tree) -> Optional[str]:
    """Path of the first floating-point leaf holding NaN or inf, or None."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        leaf = _host_array(leaf)
        if np.issubdtype(leaf.dtype, np.inexact) and not np.isfinite(leaf).all():
            return jax.tree_util.keystr(path)
    return None


def _short(error: BaseException) -> str:
    """One line of an exception: tensorstore's go on for pages."""
    lines = str(error).strip().splitlines()
    first = (lines[0] if lines else "").split(" See full TensorStore details")[0]
    return f"{type(error).__name__}: {first}"[:300]


class Checkpointer:
    """Saves / restores `TrainState` + config JSON + data fingerprint + checksum under
    `workdir/checkpoints/<step>/`; damaged checkpoints are moved to
    `workdir/checkpoints_damaged/<step>/`."""

    def __init__(self, workdir: str, *, every_steps: int, keep: int):
        if every_steps <= 0:
            raise ValueError(f"checkpoint.every_steps must be > 0, got {every_steps}")
        if keep <= 0:
            raise ValueError(f"checkpoint.keep must be > 0, got {keep}")
        self.every_steps = every_steps
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self._damaged_dir = os.path.abspath(os.path.join(workdir, DAMAGED_DIR))
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 save_interval_steps=1),
            item_names=("state", "config", "data", "checksum"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def should_save(self, step: int) -> bool:
        return step % self.every_steps == 0

    def save(self, step: int, state: TrainState, config: dict,
             data_fingerprint: Optional[dict] = None) -> None:
        """Asynchronous save of `state` (with the config dict, the data fingerprint and the
        state's checksum as JSON) as checkpoint `step`. Raises NonFiniteStateError (and saves
        nothing) if the state holds NaN or inf."""
        if step in self._manager.all_steps():
            return
        host = jax.tree.map(_host_array, _as_dict(state))
        bad = first_non_finite(host)
        if bad is not None:
            raise NonFiniteStateError(f"refusing to save checkpoint {step}: state{bad} holds "
                                      f"NaN or inf")
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(host), config=ocp.args.JsonSave(config),
            data=ocp.args.JsonSave({"fingerprint": data_fingerprint}),
            checksum=ocp.args.JsonSave({"sha256": state_checksum(host),
                                        "meta_sha256": _meta_checksum(config, data_fingerprint)})))

    def restore_meta(self, step: int) -> tuple[dict, Optional[dict]]:
        """(config dict, data fingerprint) saved with checkpoint `step`; DamagedCheckpointError
        if they cannot be read or do not match their checksum."""
        try:
            meta = self._manager.restore(step, args=ocp.args.Composite(
                config=ocp.args.JsonRestore(), data=ocp.args.JsonRestore(),
                checksum=ocp.args.JsonRestore()))
            config, fingerprint = meta["config"], meta["data"]["fingerprint"]
            expected = meta["checksum"]["meta_sha256"]
        except Exception as e:  # orbax / tensorstore / json raise assorted errors
            raise DamagedCheckpointError(f"checkpoint {step} in {self.directory}: its config or "
                                         f"data record cannot be read ({_short(e)})") from e
        if _meta_checksum(config, fingerprint) != expected:
            raise DamagedCheckpointError(f"checkpoint {step} in {self.directory} is damaged: its "
                                         f"config or data record does not match its checksum")
        return config, fingerprint

    def restore(self, step: int, target: TrainState) -> TrainState:
        """Restore checkpoint `step` into the structure, dtypes and shardings of `target` and
        verify its checksum; DamagedCheckpointError if it cannot be read or does not match."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _as_dict(target))
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), checksum=ocp.args.JsonRestore()))
            expected = restored["checksum"]["sha256"]
        except Exception as e:  # orbax / tensorstore / json raise assorted errors
            raise DamagedCheckpointError(f"checkpoint {step} in {self.directory} cannot be read "
                                         f"({_short(e)})") from e
        actual = state_checksum(restored["state"])
        if actual != expected:
            raise DamagedCheckpointError(
                f"checkpoint {step} in {self.directory} is damaged: the sha256 of its arrays is "
                f"{actual[:12]}..., saved as {expected[:12]}...")
        return TrainState(**restored["state"])

    def restore_latest(self, target: TrainState,
                       check: Callable[[dict, Optional[dict]], None]) -> Optional[TrainState]:
        """The newest checkpoint that reads and verifies, or None if there is none.

        `check(config, data_fingerprint)` vets each candidate before its state is read (it
        raises, e.g. on a config mismatch, and that error propagates). A damaged checkpoint is
        moved to `checkpoints_damaged/` with a warning naming its step and why, and the next
        older one is tried; CheckpointError (naming the directory and the steps tried) if none
        is good.
        """
        tried = []
        for step in reversed(self.all_steps()):
            tried.append(step)
            try:
                config, fingerprint = self.restore_meta(step)
                check(config, fingerprint)
                return self.restore(step, target)
            except DamagedCheckpointError as e:
                where = self._set_aside(step)
                _log.warning("skipping checkpoint %d: %s; moved to %s, trying the previous "
                                "one", step, e, where)
        if tried:
            raise CheckpointError(
                f"no checkpoint in {self.directory} could be restored (tried steps {tried}; the "
                f"damaged ones are in {self._damaged_dir}). Delete the workdir's checkpoints to "
                f"start over, or use a new workdir")
        return None

    def _set_aside(self, step: int) -> str:
        """Move checkpoint `step` out of the manager's directory (kept for inspection)."""
        source = os.path.join(self.directory, str(step))
        target = os.path.join(self._damaged_dir, str(step))
        if jax.process_index() == 0 and os.path.isdir(source):
            os.makedirs(self._damaged_dir, exist_ok=True)
            if os.path.exists(target):
                shutil.rmtree(target)
            os.replace(source, target)
        self._manager.reload()
        return target

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

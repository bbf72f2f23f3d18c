"""Checkpoints with orbax: the full TrainState plus the run's config, every N steps and at the
end, keeping the latest K. Orbax writes each step to a temporary directory and renames it when
complete, so an interrupted save never looks like a checkpoint."""
import os

import jax
import orbax.checkpoint as ocp

from gen_jax.train.state import TrainState


def _as_dict(state: TrainState) -> dict:
    return dict(step=state.step, params=state.params, opt_state=state.opt_state,
                ema_params=state.ema_params, rng=state.rng, skipped_steps=state.skipped_steps)


class Checkpointer:
    """Saves / restores `TrainState` + config JSON under `workdir/checkpoints/<step>/`."""

    def __init__(self, workdir: str, *, every_steps: int, keep: int):
        if every_steps <= 0:
            raise ValueError(f"checkpoint.every_steps must be > 0, got {every_steps}")
        if keep <= 0:
            raise ValueError(f"checkpoint.keep must be > 0, got {keep}")
        self.every_steps = every_steps
        self._manager = ocp.CheckpointManager(
            os.path.abspath(os.path.join(workdir, "checkpoints")),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 save_interval_steps=1),
            item_names=("state", "config"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def should_save(self, step: int) -> bool:
        return step % self.every_steps == 0

    def save(self, step: int, state: TrainState, config: dict) -> None:
        """Asynchronous save of `state` (and the config dict as JSON) as checkpoint `step`."""
        if step in self._manager.all_steps():
            return
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(_as_dict(state)), config=ocp.args.JsonSave(config)))

    def restore_config(self, step: int) -> dict:
        return self._manager.restore(step, args=ocp.args.Composite(
            config=ocp.args.JsonRestore()))["config"]

    def restore(self, step: int, target: TrainState) -> TrainState:
        """Restore checkpoint `step` into the structure, dtypes and shardings of `target`."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _as_dict(target))
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract)))["state"]
        return TrainState(**restored)

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

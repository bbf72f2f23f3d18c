"""The state of a run: its optimizer and initial TrainState from the config, and a trained run's
state restored from its workdir (for evaluation and sampling outside the loop)."""
import jax

from gen_jax.train import sharding as sharding_lib
from gen_jax.train.checkpoint import Checkpointer, DamagedCheckpointError
from gen_jax.train.config import with_added_fields
from gen_jax.train.optimizer import learning_rate_schedule, make_optimizer
from gen_jax.train.state import TrainState, create_train_state
from gen_jax.train.step import place_state


def optimizer_from_config(config):
    """(optax optimizer, learning-rate schedule) of a training config's `optimizer` section."""
    o, steps = config.optimizer, config.train.steps
    optimizer = make_optimizer(learning_rate=o.learning_rate, total_steps=steps,
                               warmup_steps=o.warmup_steps, end_lr_ratio=o.end_lr_ratio,
                               weight_decay=o.weight_decay, b1=o.b1, b2=o.b2,
                               grad_clip_norm=o.grad_clip_norm)
    return optimizer, learning_rate_schedule(o.learning_rate, steps, o.warmup_steps, o.end_lr_ratio)


def initial_state(config, components, optimizer, mesh) -> TrainState:
    """Step-0 TrainState of `components.params`, rng fold_in(PRNGKey(seed), 0), on `mesh`."""
    rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0)
    return place_state(create_train_state(components.params, optimizer, rng), mesh,
                       config.mesh.param_sharding)


def saved_config(workdir: str) -> dict:
    """The config dict stored with the newest readable checkpoint of `workdir`, with fields added
    since filled in (`config.with_added_fields`); ValueError if it holds none."""
    checkpointer = Checkpointer(workdir, every_steps=1, keep=1 << 30)
    try:
        for step in reversed(checkpointer.all_steps()):
            try:
                return with_added_fields(checkpointer.restore_meta(step)[0])
            except DamagedCheckpointError:
                continue
        raise ValueError(f"{workdir} holds no readable checkpoint (expected "
                         f"{workdir}/checkpoints/<step>/, as written by experiments.train)")
    finally:
        checkpointer.close()


def restore_trained(config, workdir: str, components) -> TrainState:
    """The TrainState of the newest good checkpoint in `workdir` (verified by its checksum;
    damaged ones are set aside with a warning), placed on the config's mesh."""
    mesh = sharding_lib.make_mesh(config.mesh.num_devices, config.mesh.model_parallelism)
    target = initial_state(config, components, optimizer_from_config(config)[0], mesh)
    checkpointer = Checkpointer(workdir, every_steps=1, keep=1 << 30)
    try:
        state = checkpointer.restore_latest(target, lambda saved, fingerprint: None)
    finally:
        checkpointer.close()
    if state is None:
        raise ValueError(f"{workdir} holds no checkpoint")
    return state

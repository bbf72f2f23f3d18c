"""A trained run's state from its workdir, for evaluation and sampling outside the loop."""
import jax

from gen_jax.train import sharding as sharding_lib
from gen_jax.train.checkpoint import Checkpointer
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


def saved_config(workdir: str) -> dict:
    """The config dict stored with the latest checkpoint of `workdir`; ValueError if none."""
    checkpointer = Checkpointer(workdir, every_steps=1, keep=1 << 30)
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise ValueError(f"{workdir} holds no checkpoint (expected {workdir}/checkpoints/<step>/, "
                             f"as written by experiments.train)")
        return checkpointer.restore_config(step)
    finally:
        checkpointer.close()


def restore_trained(config, workdir: str, components) -> TrainState:
    """The TrainState of the latest checkpoint in `workdir`, placed on the config's mesh."""
    mesh = sharding_lib.make_mesh(config.mesh.num_devices)
    optimizer, _ = optimizer_from_config(config)
    target = place_state(create_train_state(components.params, optimizer,
                                            jax.random.PRNGKey(config.seed)),
                         mesh, config.mesh.param_sharding)
    checkpointer = Checkpointer(workdir, every_steps=1, keep=1 << 30)
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise ValueError(f"{workdir} holds no checkpoint")
        return checkpointer.restore(step, target)
    finally:
        checkpointer.close()

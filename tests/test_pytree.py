"""`pytree_dataclass`: tree structures include the class, so jit never confuses two processes
with equal settings (jax's own `register_dataclass` structures compare equal across classes)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax.core.pytree import pytree_dataclass
from gen_jax.core.sde import VPSDE, SubVPSDE
from gen_jax.train.state import create_train_state


def test_processes_with_equal_settings_have_different_structures():
    assert jax.tree.structure(VPSDE()) != jax.tree.structure(SubVPSDE())
    assert jax.tree.structure(VPSDE()) == jax.tree.structure(VPSDE())
    assert jax.tree.structure(VPSDE()) != jax.tree.structure(VPSDE(beta_max=10.0))


def test_one_jitted_function_gives_each_process_its_own_answer():
    """Many alternating calls: any cache confusion would return VP's std for sub-VP."""
    std = jax.jit(lambda process, t: process.marginal_prob(jnp.zeros((1, 1)), t)[1])
    t = jnp.array([0.5])
    for _ in range(50):
        vp, subvp = float(std(VPSDE(), t)[0]), float(std(SubVPSDE(), t)[0])
        m2 = np.exp(2 * float(VPSDE().log_mean_coeff(0.5)))
        np.testing.assert_allclose([vp, subvp], [np.sqrt(1 - m2), 1 - m2], rtol=1e-5)


def test_static_fields_are_structure_and_the_rest_leaves_with_attribute_paths():
    @pytree_dataclass
    @dataclasses.dataclass(frozen=True)
    class Pair:
        a: jax.Array
        name: str = dataclasses.field(default="x", metadata=dict(static=True))

        def __post_init__(self):
            if self.name == "bad":
                raise ValueError("name")

    p = Pair(jnp.ones(3), "y")
    leaves, tree = jax.tree.flatten(p)
    assert len(leaves) == 1 and tree != jax.tree.structure(Pair(jnp.ones(3), "z"))
    q = jax.tree.unflatten(tree, [jnp.zeros(3)])
    assert isinstance(q, Pair) and q.name == "y" and float(q.a.sum()) == 0.0
    paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(p)[0]]
    assert paths == [".a"]
    with pytest.raises(TypeError, match="dataclass"):
        pytree_dataclass(int)


def test_train_state_paths_are_its_field_names():
    """Checkpoints address the state by these paths (orbax), as with jax's dataclass nodes."""
    state = create_train_state({"w": jnp.ones(2)}, optax.sgd(0.1), jax.random.PRNGKey(0))
    paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
    assert paths == [".step", ".params['w']", ".ema_params['w']", ".rng", ".skipped_steps",
                     ".consecutive_skips"]

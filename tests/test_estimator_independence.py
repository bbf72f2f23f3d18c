"""Every repeated estimator of every registered family draws its randomness independently per
example: no stratification of t across the batch, so the mean and SE of any subset of examples
(the PF-ODE's first N, a paired difference) are honest.

Check: a batch of identical examples gives per-row estimates that are iid draws, so their lag-1
autocorrelation over row order is ~ N(0, 1/B). Stratified (antithetic) times put neighbouring
rows at neighbouring t, whose values are strongly correlated (checked below for the core
functions themselves, so the test can tell the two apart).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs.base import get_base_config
from gen_jax import families
from gen_jax.core.masked import MaskingSchedule, masked_elbo
from gen_jax.train.build import build_components, load_split

ROWS = 128
# iid rows: lag-1 autocorrelation has SE ~ 1/sqrt(ROWS) = 0.088; 0.45 is 5 SE.
LIMIT = 0.45


def _lag1(values):
    v = np.asarray(values, np.float64)
    v = v - v.mean()
    return float(np.sum(v[1:] * v[:-1]) / np.sum(v * v))


def _config(name):
    c = get_base_config(name, "markov" if name == "block" else "digits")  # block: text only
    c.model.width, c.model.depth, c.model.num_heads = 16, 1, 2
    return c


@pytest.mark.parametrize("name", ["gaussian", "masked", "flow", "block"])
def test_repeated_estimators_draw_independently_per_example(name):
    config = _config(name)
    components = build_components(config)
    example = load_split(config, config.data.eval_split).get_batch(np.arange(1))
    batch = {k: jnp.repeat(jnp.asarray(v), ROWS, axis=0) for k, v in example.items()
             if k in ("image", "tokens", "token_mask")}
    estimators = [e for e in families.get(name).estimators(components.view, components.spec, config)
                  if e.repeated]
    assert estimators, name
    for e in estimators:
        nll = jax.jit(e.fn)(components.params, batch, jax.random.PRNGKey(3)).nll
        assert abs(_lag1(nll)) < LIMIT, (name, e.name, _lag1(nll))


def test_the_check_detects_stratified_times():
    """Antithetic times on identical examples: neighbouring rows are correlated well past LIMIT."""
    x = jnp.tile(jnp.arange(16) % 5, (ROWS, 1))
    # A model of x whose confidence falls with t, so the per-row nll is a smooth function of t.
    logits = lambda x_t, t: 8.0 * (1.0 - t)[:, None, None] * jax.nn.one_hot(x, 5)
    out = jax.jit(lambda k: masked_elbo(k, logits, x, MaskingSchedule(), 5, antithetic=True).nll)(
        jax.random.PRNGKey(0))
    assert _lag1(out) > LIMIT
    iid = jax.jit(lambda k: masked_elbo(k, logits, x, MaskingSchedule(), 5, antithetic=False).nll)(
        jax.random.PRNGKey(0))
    assert abs(_lag1(iid)) < LIMIT

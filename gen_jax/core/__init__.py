"""gen_jax.core: pure functions on arrays for AR, Gaussian-diffusion and masked-diffusion models.

Failure policy (every function in the core follows it):

- Eager, static checks raise ValueError naming the argument: shapes, dtypes, python numbers
  and choices, counts such as ``num_levels`` / ``num_steps`` (ints only: 17.0, "17" and True
  are rejected), and the *values* of concrete inputs: times outside [0, 1], integer levels or
  token ids outside their range. Shape checks run at trace time too, so they also raise under
  ``jax.jit``.
- Inside ``jax.jit`` values are traced and nothing can raise. A computation whose input values
  are invalid (e.g. an out-of-range id) or that fails numerically (e.g. an adaptive diffrax
  solve that hits ``max_steps``) returns NaN for the affected examples only, and says so in its
  result where it has one (``LikelihoodResult.terms["solver_ok"]`` for the PF-ODE). No function
  raises an EquinoxRuntimeError or a host-callback error from inside jit.

Likelihoods return ``results.LikelihoodResult(nll (B,) nats, terms)``; units in ``units``;
processes implement ``sde.Process``; log-SNR schedules implement ``schedules.LogSNRSchedule``.
"""

"""gen_jax: autoregressive and diffusion generative models over one functional JAX core."""

__version__ = "0.1.0"

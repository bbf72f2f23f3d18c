"""Training system: `loop.train(config, workdir)` (configs in experiments/configs).

state.py TrainState · optimizer.py AdamW + schedule + EMA · sharding.py mesh / shardings ·
step.py jitted train / eval steps · components.py what the loop trains ·
build.py Components of a config's family (gen_jax.families) · checkpoint.py orbax · metrics.py JSONL /
TensorBoard · samples.py sample files · config.py config validation · loop.py the loop.
"""

"""Shared defaults of every training config. Family configs call `get_base_config(family,
dataset)` and change only what differs, so the AR, Gaussian and masked models of one dataset
share `config.model` (width, depth, heads, MLP ratio) and are matched in size by construction.

Fields (all overridable: `--config.train.steps=200`):
  family: a registered family ('ar' | 'gaussian' | 'masked' | ...).   seed: run seed (init,
    data order, step keys).
  data: name, data_dir / tfds_dir (offline files or a tfds directory), splits, options (passed
    to `gen_jax.data.load`, e.g. seq_len for text; text_file declares path, tokenizer, seq_len).
  model: transformer size shared by every family (no dropout: the pure train step is
    deterministic given the step key); patch_size: pixels per token side, gaussian only;
    compute_dtype (bf16 mixed precision) and remat (activation checkpointing).
  <family>: one section per registered family (`Family.default_config()`, each field commented
    in its module in gen_jax/families/): its objective (run-defining), and `eval` / `sample`
    sub-sections with its estimators' and samplers' settings (free to change on resume).
  optimizer: AdamW + warmup / cosine, global-norm clipping, EMA decay.
  train: steps, batch_size (global), max_consecutive_skips (non-finite steps in a row before
    the run stops with DivergenceError; may change on resume), microbatches (gradient
    accumulation).   mesh: devices, mesh shape and parameter sharding strategy.
  distributed: jax.distributed.initialize() for multi-host runs.
  checkpoint / logging / eval / sample: cadences in steps; eval.every_steps=0 evaluates only at
    the end, sample.every_steps=0 never samples (otherwise also at the end). eval.repeats and
    eval.max_examples are for `experiments.evaluate` / `compare` (every estimator).
"""
import ml_collections

from gen_jax import families


def get_base_config(family: str, dataset: str) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.family = family
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.name = dataset
    c.data.data_dir = ""
    c.data.tfds_dir = ""
    c.data.train_split = "train"
    c.data.eval_split = "test"
    c.data.options = ml_collections.ConfigDict()
    if dataset == "text_file":  # declared, so --config.data.options.path=... can set them
        c.data.options.path = ""
        c.data.options.tokenizer = "char"
        c.data.options.seq_len = 256

    c.model = ml_collections.ConfigDict()
    c.model.width = 64
    c.model.depth = 2
    c.model.num_heads = 4
    c.model.mlp_ratio = 4.0
    # RoPE and a learned absolute table. RoPE alone: a bidirectional model whose input is pure
    # noise or all masks sees only relative offsets (absolute position leaks in only through
    # the sequence edges), and on digits it failed to learn the position-dependent mean image
    # at low SNR. Learned alone: a masked
    # model learns to look up its neighbours far more slowly (stuck at the uniform model for
    # hundreds of steps on the Markov data, where neighbours are all the signal).
    c.model.positional = "rope+learned"
    c.model.patch_size = 1  # gaussian family only: p x p pixel patches per token (DiT)
    # 'float32' | 'bfloat16': dtype of matmuls and activations in training; parameters stay
    # float32, losses, log-softmax and LayerNorm statistics run in float32, and evaluation and
    # sampling always use a float32-compute copy of the model.
    c.model.compute_dtype = "float32"
    c.model.remat = False  # recompute each transformer block in the backward pass (saves memory)

    for name in families.names():  # each family's own section, e.g. c.gaussian.prediction
        c[name] = families.get(name).default_config()

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.learning_rate = 1e-3
    c.optimizer.warmup_steps = 100
    c.optimizer.end_lr_ratio = 0.1
    c.optimizer.weight_decay = 0.01
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.99
    c.optimizer.grad_clip_norm = 1.0
    c.optimizer.ema_decay = 0.999

    c.train = ml_collections.ConfigDict()
    c.train.steps = 2000
    c.train.batch_size = 64
    c.train.max_consecutive_skips = 20  # this many non-finite steps in a row stop the run
    # gradient accumulation: the batch is split into this many microbatches, run one after the
    # other (lax.scan) in the one jitted step; must divide train.batch_size / data parallelism
    c.train.microbatches = 1

    c.mesh = ml_collections.ConfigDict()
    c.mesh.num_devices = 0  # devices used (0: all)
    # size of the mesh's 'model' axis (tensor parallelism; > 1 needs 'fsdp_tp'); the 'data' axis
    # takes the rest: mesh shape (num_devices / model_parallelism, model_parallelism)
    c.mesh.model_parallelism = 1
    # 'replicated' | 'fsdp' (params, optimizer state, EMA sharded over 'data') | 'fsdp_tp'
    # (fsdp + Megatron tensor parallelism over 'model'); see gen_jax/train/sharding.py
    c.mesh.param_sharding = "replicated"

    c.distributed = ml_collections.ConfigDict()
    c.distributed.initialize = False
    c.distributed.coordinator_address = ""
    c.distributed.num_processes = 0
    c.distributed.process_id = -1

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every_steps = 500
    c.checkpoint.keep = 3

    c.logging = ml_collections.ConfigDict()
    c.logging.every_steps = 50
    c.logging.tensorboard = True
    c.logging.progress_bar = True

    c.eval = ml_collections.ConfigDict()
    c.eval.every_steps = 500
    c.eval.batch_size = 256
    c.eval.max_batches = 0
    c.eval.use_ema = True
    c.eval.repeats = 4  # draws per example of each repeated estimator (experiments.evaluate)
    c.eval.max_examples = 0  # held-out examples of experiments.evaluate (0: the whole split)

    c.sample = ml_collections.ConfigDict()
    c.sample.every_steps = 1000
    c.sample.num_samples = 16
    c.sample.num_steps = 64
    return c

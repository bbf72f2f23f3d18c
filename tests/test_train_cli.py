"""experiments/train.py as a user runs it: text_file options settable from the command line,
and a diverging run that exits 1 with a message instead of 'final eval: nan' and exit 0."""
import os
import subprocess
import sys

from absl import flags
from ml_collections import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_text_file_options_from_the_command_line(tmp_path):
    """Before: data.options was an empty locked ConfigDict, so --config.data.options.path=...
    failed with AttributeError: 'path'."""
    config_file = tmp_path / "text_config.py"
    config_file.write_text("from experiments.configs.base import get_base_config\n\n"
                           "def get_config():\n    return get_base_config('ar', 'text_file')\n")
    argv = ["train", f"--config={config_file}", "--config.data.options.path=/data/corpus.txt",
            "--config.data.options.seq_len=64", "--config.data.options.tokenizer=byte"]
    values = flags.FlagValues()  # as experiments/train.py defines it, on its own flag set
    config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True,
                                    sys_argv=argv)
    values(argv)
    options = values.config.data.options
    assert (options.path, options.seq_len, options.tokenizer) == ("/data/corpus.txt", 64, "byte")


def test_diverging_run_exits_1_naming_skips_and_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path / "run")
    overrides = dict(train__steps=30, train__batch_size=8, train__max_consecutive_skips=3,
                     optimizer__learning_rate=1e30, optimizer__warmup_steps=1,
                     model__width=8, model__depth=1, model__num_heads=1,
                     checkpoint__every_steps=2, logging__every_steps=1,
                     logging__progress_bar=False, logging__tensorboard=False,
                     eval__every_steps=0, eval__batch_size=64, sample__every_steps=0,
                     data__tfds_dir=str(tmp_path / "tfds"))
    args = [f"--config.{k.replace('__', '.')}={v}" for k, v in overrides.items()]
    out = subprocess.run(
        [sys.executable, "-m", "experiments.train", "--config", "experiments/configs/ar_digits.py",
         "--workdir", workdir, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=os.environ.get(
                     "GEN_JAX_TEST_CACHE", os.path.join(ROOT, ".jax_cache")),
                 JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5",
                 PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])))
    assert out.returncode == 1, out.stderr[-3000:]
    assert "final eval" not in out.stdout
    message = out.stderr.strip().splitlines()[-1]
    assert message.startswith("error: training diverged at step"), message
    assert "3 consecutive skipped steps" in message
    assert "last good checkpoint is step" in message and workdir in message

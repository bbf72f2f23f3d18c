"""The experiment CLIs' shared flag handling (experiments/cli.py): bad values name the flag."""
import pytest
from absl import app, flags

from experiments import cli
from experiments.configs.base import get_base_config


class _Holder:  # what absl's FlagHolder offers cli.positive_ints
    def __init__(self, name, value):
        self.name, self.value = name, value


def test_positive_ints_parses_and_names_the_flag_on_bad_values():
    assert cli.positive_ints(_Holder("nfe", ["4", "8", " 16"])) == (4, 8, 16)
    for bad in ("x", "0", "-2", "2.5", "1e3", ""):
        with pytest.raises(app.UsageError, match=r"--nfe: .* is not a positive integer"):
            cli.positive_ints(_Holder("nfe", ["4", bad]))


def test_set_training_steps_caps_warmup_and_refuses_negative_steps():
    m = get_base_config("ar", "digits")
    m.optimizer.warmup_steps = 50
    steps_before = m.train.steps
    cli.set_training_steps(m, 0)  # 0: keep the config's
    assert (m.train.steps, m.optimizer.warmup_steps) == (steps_before, 50)
    cli.set_training_steps(m, 20)
    assert (m.train.steps, m.optimizer.warmup_steps) == (20, 20)
    with pytest.raises(app.UsageError, match="--steps"):
        cli.set_training_steps(m, -1)


def test_start_refuses_positional_arguments_and_unimportable_family_modules():
    if not flags.FLAGS.is_parsed():  # read the defaults without parsing a command line
        flags.FLAGS.mark_as_parsed()
    with pytest.raises(app.UsageError, match="unexpected arguments"):
        cli.start(["prog", "stray"], "experiments.compare")
    flags.FLAGS.family_modules = ["no_such_module_xyz"]
    try:
        with pytest.raises(app.UsageError, match="--family_modules: cannot import 'no_such_module_xyz'"):
            cli.start(["prog"], "experiments.compare")
    finally:
        flags.FLAGS.family_modules = []
    assert cli.start(["prog"], "experiments.compare").startswith("python -m experiments.compare")

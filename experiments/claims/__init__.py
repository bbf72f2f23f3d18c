"""The claims experiments: data-constrained training (data_constrained.py), sample quality
against solver steps (steps.py) and serial vs parallel generation speed (generation_speed.py),
with their shared writing and plotting helpers (report.py). CLIs: experiments/<name>.py."""

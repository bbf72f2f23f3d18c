"""Metric sinks of a run: a JSONL file and TensorBoard event files in the workdir.

Values are written only at logging steps, after one `jax.device_get`, so logging never blocks
the device between those steps.
"""
import json
import math
import os

import jax
import numpy as np


def _to_python(value):
    value = np.asarray(value)
    return value.item() if value.size == 1 else value.tolist()


def trim_metrics(path: str, last_step: int) -> int:
    """Drop the records of `path` (JSONL) with step > `last_step`, atomically (a temp file
    renamed over it); a torn last line (a kill mid-write) is dropped too. Returns how many
    records were dropped. Any other unreadable line is a ValueError naming the file and line."""
    if not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    kept, dropped = [], 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                dropped += 1
                continue
            raise ValueError(f"{path}: line {number} is not JSON; repair or remove it") from None
        if record.get("step", 0) > last_step:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in kept))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return dropped


class MetricsWriter:
    """Appends `{"step": s, "split": name, **scalars}` lines to `workdir/metrics.jsonl` and the
    same scalars as `split/name` to TensorBoard (tensorboardX, no TensorFlow) when enabled.

    start_step: the step the run (re)starts from; records after it (logged by an interrupted
    run past its last checkpoint, and so about to be logged again) are dropped first."""

    def __init__(self, workdir: str, *, tensorboard: bool = True, enabled: bool = True,
                 start_step: int = 0):
        self.enabled = enabled
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._file = None
        self._tb = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        trim_metrics(self.path, start_step)
        self._file = open(self.path, "a", encoding="utf-8")
        if tensorboard:
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, split: str, scalars: dict) -> dict:
        """Record scalars (device arrays are fetched here); returns them as python floats."""
        values = {k: _to_python(v) for k, v in jax.device_get(scalars).items()}
        if not self.enabled:
            return values
        self._file.write(json.dumps(dict(step=int(step), split=split, **values)) + "\n")
        self._file.flush()
        if self._tb is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(f"{split}/{name}", value, int(step))
            self._tb.flush()
        return values

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str, split: str | None = None) -> list[dict]:
    """All records of `workdir/metrics.jsonl` (optionally one split), in file order."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if split is None or r["split"] == split]

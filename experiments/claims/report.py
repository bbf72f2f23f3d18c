"""Writing what a claims experiment measured: results.json, a markdown table with a short
reading, and line plots; plus the curve helpers the readings use (crossings, flattening)."""
import json
import math
import os
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def write_json(results: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(results, f, indent=2, default=float)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A github markdown table; floats with 4 significant digits, None as '-'."""
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_markdown(path: str, title: str, command: str, sections: Sequence[str],
                   reading: Sequence[str], wall_seconds: float) -> str:
    """results.md: title, command, each section (tables), then the reading as bullets."""
    text = f"# {title}\n\n`{command}`\n\n" + "\n".join(sections)
    text += "\n## Reading\n\n" + "".join(f"- {line}\n" for line in reading)
    text += f"\nWall time: {wall_seconds:.0f} s.\n"
    with open(path, "w") as f:
        f.write(text)
    return text


def plot_lines(path: str, curves: dict, *, xlabel: str, ylabel: str, title: str = "",
               logx: bool = False, logy: bool = False, hline: Optional[tuple] = None) -> None:
    """curves: label -> (xs, ys[, yerr]); hline: (y, label) drawn dashed (e.g. a floor)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, curve in curves.items():
        xs, ys = curve[0], curve[1]
        if len(curve) > 2 and curve[2] is not None:
            ax.errorbar(xs, ys, yerr=curve[2], label=label, marker="o", ms=3, capsize=2)
        else:
            ax.plot(xs, ys, label=label, marker="o", ms=3)
    if hline is not None:
        ax.axhline(hline[0], color="k", ls="--", lw=1, label=hline[1])
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def crossings(xs: Sequence[float], a: Sequence[float], b: Sequence[float]) -> list:
    """x values (linearly interpolated) where curve a - b changes sign, both sampled at xs."""
    out = []
    d = [u - v for u, v in zip(a, b)]
    for i in range(1, len(d)):
        if d[i - 1] == 0:
            out.append(float(xs[i - 1]))
        elif d[i - 1] * d[i] < 0:
            frac = d[i - 1] / (d[i - 1] - d[i])
            out.append(float(xs[i - 1] + frac * (xs[i] - xs[i - 1])))
    return out


def flattening_point(xs: Sequence[float], values: Sequence[float],
                     errors: Sequence[float]) -> Optional[float]:
    """The first x after which the value (lower is better) improves by less than the combined
    standard error: min_i with values[i] - values[j] < sqrt(se_i² + se_j²) for every j > i
    (None for an empty curve; the last x when it keeps improving)."""
    for i in range(len(xs)):
        if all(values[i] - values[j] < math.hypot(errors[i], errors[j])
               for j in range(i + 1, len(xs))):
            return float(xs[i])
    return None

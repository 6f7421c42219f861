"""The diagnosis's findings and their plain text.

A `Finding` is one thing the diagnosis saw: its severity, a short title, the numbers it saw and
what to try. `render` prints a list of them, a summary line first; the `fmt_*` functions write
numbers the way the findings' words show them.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Any

from .runlog import metric_value

SEVERITIES = ("problem", "warning", "good")
_LABEL = {"problem": "PROBLEM", "warning": "WARNING", "good": "GOOD"}


@dataclass
class Finding:
    severity: str   # "problem" | "warning" | "good"
    title: str      # short, e.g. "loss is stuck"
    saw: str        # what the numbers showed
    try_next: str   # what to try, in plain words; "" for good findings


def fmt_loss(x: float) -> str:
    """A loss-like number: 5.10, 0.0312."""
    if not math.isfinite(x):
        return str(x)
    return f"{x:.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:.3g}"


def fmt_pct(x: float) -> str:
    """An accuracy in 0..1 as a percentage: 0.0022 -> 0.22%, 0.5 -> 50.0%."""
    p = 100 * x
    return f"{p:.2f}%" if 0 < abs(p) < 1 else f"{p:.1f}%"


def fmt_lr(x: Any) -> str:
    v = metric_value(x)
    return f"{v:g}" if v is not None else "not set"


def fmt_signed_pct(r: float) -> str:
    return f"{r * 100:+.1f}%" if math.isfinite(r) else ("+inf%" if r > 0 else "-inf%")


def render(findings: list[Finding], header: str | None = None, width: int = 88) -> str:
    """Plain text: a summary line, then one block per finding."""
    lines = [header, ""] if header else []
    n_problems = sum(f.severity == "problem" for f in findings)
    n_warnings = sum(f.severity == "warning" for f in findings)
    if n_problems or n_warnings:
        def count(n, word):
            return f"{n} {word}{'' if n == 1 else 's'}"
        lines.append(f"Found {count(n_problems, 'problem')} and {count(n_warnings, 'warning')}.")
    else:
        lines.append("No problems found.")
    for f in findings:
        lines.append("")
        lines.append(f"{_LABEL.get(f.severity, f.severity.upper()):<8} {f.title}")
        for key, text in (("saw", f.saw), ("try", f.try_next)):
            if text:
                lines.extend(textwrap.wrap(f"{key}: {text}", width=width, initial_indent="  ",
                                           subsequent_indent="       "))
    return "\n".join(lines) + "\n"

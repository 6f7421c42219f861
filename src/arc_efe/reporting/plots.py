"""Training curves as PNG images for the HTML run report (matplotlib, Agg backend).

Each `*_plot` function takes the step and epoch records of `metrics.jsonl` (see runlog.py)
and returns a `Plot` holding the base64 PNG, or None when the run has nothing to draw yet (no
epoch finished, memory off, ...). NaN and inf values are left out of the curves and counted in
the plot's note. Figures are drawn without pyplot, so nothing global changes.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .runlog import COMPONENTS, metric_value

SIZE = (6.4, 3.2)  # inches; at DPI this is 640x320 px
DPI = 100


@dataclass
class Plot:
    title: str
    png: str       # base64-encoded PNG
    note: str = ""  # e.g. "2 NaN/inf values left out"


@dataclass
class Series:
    label: str
    x: list[float]
    y: list[float]        # NaN where the value was missing or not finite
    dropped: int = 0      # non-finite values left out


def series(records: list[dict], key: str, label: str, sub: str | None = None,
           x_key: str = "step", scale: float = 1.0) -> Series:
    """Field `key` (or `key[sub]`) of each record against its `x_key`; absent values are skipped."""
    out = Series(label, [], [])
    for rec in records:
        field = rec.get(key)
        if sub is not None:
            field = field.get(sub) if isinstance(field, dict) else None
        value, x = metric_value(field), metric_value(rec.get(x_key))
        if value is None or x is None:
            continue
        if not math.isfinite(value):
            out.dropped += 1
            value = math.nan
        out.x.append(x)
        out.y.append(value * scale)
    return out


def _drawn(curves: list[Series]) -> list[Series]:
    return [s for s in curves if any(math.isfinite(v) for v in s.y)]


def _note(curves: list[Series]) -> str:
    dropped = sum(s.dropped for s in curves)
    return f"{dropped} NaN/inf value{'s' if dropped != 1 else ''} left out" if dropped else ""


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def line_plot(title: str, curves: list[Series], xlabel: str, ylabel: str,
              log_y: bool = False, from_zero: bool = False) -> Plot | None:
    """Curves on one axis (markers when there are few points), or None when none has a value."""
    drawn = _drawn(curves)
    if not drawn:
        return None
    fig = Figure(figsize=SIZE, dpi=DPI, layout="tight")
    ax = fig.subplots()
    for s in drawn:
        few = len(s.x) <= 20
        ax.plot(s.x, s.y, label=s.label, linewidth=1.4, marker="o" if few else None, markersize=4)
    if log_y and all(v > 0 for s in drawn for v in s.y if math.isfinite(v)):
        ax.set_yscale("log")
    elif from_zero:
        ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps and epochs are whole numbers
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(drawn) > 1:
        ax.legend(fontsize="small")
    return Plot(title, _png(fig), _note(curves))


def loss_plot(steps: list[dict], epochs: list[dict]) -> Plot | None:
    """Total loss per step; the epoch means as points at each epoch's last step."""
    curves = [series(steps, "loss", "loss per step")]
    last_step = {}
    for rec in steps:
        last_step[rec.get("epoch")] = rec.get("step")
    means = [{"step": last_step.get(e.get("epoch"), e.get("epoch")), "loss": e.get("train_loss")}
             for e in epochs]
    curves.append(series(means, "loss", "epoch mean"))
    return line_plot("Loss (total)", curves, "step", "loss")


def components_plot(steps: list[dict], epochs: list[dict]) -> Plot | None:
    """Each loss component per step (per epoch when no step was logged)."""
    records, x = (steps, "step") if steps else (epochs, "epoch")
    names = [c for c in COMPONENTS if any(c in (r.get("components") or {}) for r in records)]
    names += sorted({k for r in records for k in (r.get("components") or {})} - set(names))
    curves = [series(records, "components", name, sub=name, x_key=x) for name in names]
    return line_plot("Loss components", curves, x, "value (1 = uniform guess)")


def lr_plot(steps: list[dict]) -> Plot | None:
    return line_plot("Learning rate", [series(steps, "lr", "learning rate")], "step", "lr", log_y=True)


def accuracy_plot(epochs: list[dict]) -> Plot | None:
    curves = [series(epochs, "batch_accuracy", "training (the epoch's batches)", x_key="epoch", scale=100),
              series(epochs, "train_accuracy", "training (fixed queries, after the epoch)", x_key="epoch", scale=100),
              series(epochs, "val_accuracy", "validation (pass@2)", x_key="epoch", scale=100)]
    return line_plot("Accuracy", curves, "epoch", "%", from_zero=True)


def memory_plot(epochs: list[dict], memory_on: bool) -> Plot | None:
    """Bank size and adds per epoch; None with the memory off (training logs zeros then)."""
    if not memory_on:
        return None
    curves = [series(epochs, "memory_size", "entries in the bank", x_key="epoch"),
              series(epochs, "memory_adds", "adds in the epoch", x_key="epoch")]
    return line_plot("Memory bank", curves, "epoch", "entries", from_zero=True)


def speed_plot(steps: list[dict]) -> Plot | None:
    return line_plot("Throughput", [series(steps, "tokens_per_s", "tokens/s")], "step", "tokens/s")


def training_plots(config: dict, records: list[dict]) -> list[tuple[str, Plot | None]]:
    """Every plot of the report with what to say when it is missing."""
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    return [("no loss logged yet", loss_plot(steps, epochs)),
            ("no loss components logged yet", components_plot(steps, epochs)),
            ("no learning rate logged yet", lr_plot(steps)),
            ("no epoch finished yet, so no accuracy", accuracy_plot(epochs)),
            ("memory bank: off (--no-memory) or no epoch finished yet",
             memory_plot(epochs, config.get("memory") is True)),
            ("no throughput logged yet", speed_plot(steps))]

"""Say, in plain words, what went wrong in a training run and what to try: the checks.

`diagnose` reads a run's settings and metrics lines (`runlog.py` reads them from the run
folder) and turns them into a list of `Finding`s (problems first, then warnings, then good
signs; `findings.py` holds them and renders them as text); `write_diagnosis` stores the text
as `diagnosis.txt` beside the metrics. It works on a finished run, a running one and a crashed
one. Every threshold is a module constant below, with the reason for its value.

The loss components (risk, ambiguity, consistency, bidirectional, step) are divergences: each
is >= 0, about 1.0 for a uniform guess and 0 for a perfect answer.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Iterable

from ..data.files import atomic_write_text
from .findings import SEVERITIES, Finding, fmt_loss, fmt_lr, fmt_pct, fmt_signed_pct, render
from .runlog import COMPONENTS, metric_value

# Fewest step lines for a step-based loss trend: with fewer, a quarter is one or two noisy steps.
MIN_TREND_STEPS = 8
# Relative change of the mean loss (first quarter -> last quarter, or first -> last epoch) that
# counts as a real trend; smaller moves are within the step-to-step noise of a stuck run.
TREND_REL = 0.05
# A trend must also stand out of the noise: the two means compared must differ by more than
# this many standard errors (from the step losses behind each mean). A short fine-tune whose
# steps differ in tasks and sizes has a noisy loss; a move inside the noise is no trend.
NOISE_SE = 2.0
# A loss whose recent mean is below this is already close to perfect (components are ~1.0 for a
# uniform guess, 0 for a perfect answer), so a flat loss there is not "stuck".
LOW_LOSS = 0.05
# Components are divergences and cannot go below zero; allow this much for float rounding.
NEGATIVE_TOL = 1e-6
# Share of the weighted loss above which one component drowns out the others' gradients.
DOMINANT_SHARE = 0.8
# A component mean above this is clearly worse than a uniform guess (~1.0): confidently wrong.
COMPONENT_MAX = 1.5
# agent_lr below this learns too slowly for a run of a few epochs (users' presets: 5e-5 .. 5e-4).
LOW_LR = 3e-5
# Epochs with validation accuracy still exactly 0 before we warn about it.
VAL_PATIENCE = 3
# Overfitting: training accuracy at least this far above validation accuracy ...
OVERFIT_GAP = 0.3
# ... and at least this high (a 0.35 vs 0.05 gap early in training is mostly noise).
OVERFIT_MIN_TRAIN = 0.5

_RANK = {s: i for i, s in enumerate(SEVERITIES)}


# ---------------------------------------------------------------- small helpers

def _finite(x: Any) -> float | None:
    v = metric_value(x)
    return v if v is not None and math.isfinite(v) else None


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _rel(first: float, last: float) -> float:
    """Relative change from first to last (+0.1 means 10% higher)."""
    if abs(first) < 1e-12:
        return 0.0 if abs(last) < 1e-12 else math.copysign(math.inf, last)
    return (last - first) / abs(first)


def _where(rec: dict) -> str:
    if rec.get("kind") == "step":
        return f"step {rec.get('step', '?')}"
    return f"epoch {rec.get('epoch', '?')} summary"


def _components(rec: dict) -> dict:
    c = rec.get("components")
    return c if isinstance(c, dict) else {}


# ---------------------------------------------------------------- the checks

def _check_nonfinite(steps: list[dict], epochs: list[dict]) -> list[Finding]:
    found: list[tuple[dict, str]] = []   # (record, field) for each record with a NaN/inf
    for rec in steps + epochs:
        loss_key = "loss" if rec.get("kind") == "step" else "train_loss"
        fields = [(loss_key, rec.get(loss_key))] + [(f"{k} component", v) for k, v in _components(rec).items()]
        for name, value in fields:
            v = metric_value(value)
            if v is not None and not math.isfinite(v):
                found.append((rec, f"{name} = {v}"))
                break
    skipped = [(e.get("epoch", "?"), int(n)) for e in epochs
               if (n := _finite(e.get("nan_skipped"))) is not None and n > 0]
    if not found and not skipped:
        return []
    saw = []
    if found:
        n_steps = sum(1 for r, _ in found if r.get("kind") == "step")
        n_epochs = len(found) - n_steps
        parts = []
        if n_steps:
            parts.append(f"{n_steps} of {len(steps)} step lines")
        if n_epochs:
            parts.append(f"{n_epochs} of {len(epochs)} epoch summaries")
        rec, what = found[0]
        saw.append(f"NaN or infinite values in {' and '.join(parts)}; the first at {_where(rec)} ({what})")
    if skipped:
        total = sum(n for _, n in skipped)
        saw.append(f"the training loop skipped {total} step(s) because the loss or gradient was NaN or infinite, "
                   f"first in epoch {skipped[0][0]}")
    return [Finding(
        "problem", "loss became NaN or infinite", "; ".join(saw),
        "lower the learning rate (e.g. halve --agent-lr); check the data for empty or oversized "
        "grids around the first bad step; turn on gradient clipping (e.g. max grad norm 1.0)")]


def _check_rollbacks(rollbacks: list[dict]) -> list[Finding]:
    """The NaN guard's rollbacks (Trainer.roll_back, training/trainer.py): each one means many bad steps in a row."""
    if not rollbacks:
        return []
    parts = []
    for r in rollbacks:
        target = f"checkpoint {r['checkpoint']}" if r.get("checkpoint") else "the weights it had (no checkpoint yet)"
        parts.append(f"at step {r.get('step', '?')} after {r.get('bad_steps', '?')} bad steps in a row, "
                     f"back to {target}")
    scale = _finite(rollbacks[-1].get("lr_scale"))
    saw = (f"training rolled back {len(rollbacks)} time(s): " + "; ".join(parts)
           + (f"; the learning rate is now x{scale:g} of the schedule" if scale is not None else ""))
    return [Finding(
        "problem", "training rolled back to a checkpoint", saw,
        "the run goes on at the lower learning rate; if it rolls back again, start it with a lower "
        "--agent-lr / --qwen-lr (the lowered value is a good start), keep gradient clipping on "
        "(--grad-clip 1.0), and look at the data around the first bad step")]


def _noise(a: list[float], b: list[float]) -> float | None:
    """NOISE_SE standard errors of the difference of the means of a and b (None: too few)."""
    if len(a) < 2 or len(b) < 2:
        return None
    return NOISE_SE * math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))


def _epoch_losses(steps: list[dict], epoch) -> list[float]:
    return [v for r in steps if r.get("epoch") == epoch and (v := _finite(r.get("loss"))) is not None]


def _loss_trend(steps: list[dict], epochs: list[dict]) -> dict | None:
    """The loss trend from step lines and/or epoch lines, or None when there is too little data."""
    trend: dict = {}
    losses = [v for r in steps if (v := _finite(r.get("loss"))) is not None]
    noise = None
    if len(losses) >= MIN_TREND_STEPS:
        q = len(losses) // 4
        first, last = sum(losses[:q]) / q, sum(losses[-q:]) / q
        trend["steps"] = (first, last, _rel(first, last), q)
        noise = _noise(losses[:q], losses[-q:])
    ep = [(e.get("epoch", "?"), v) for e in epochs if (v := _finite(e.get("train_loss"))) is not None]
    if len(ep) >= 2:
        (e0, first), (e1, last) = ep[0], ep[-1]
        trend["epochs"] = (first, last, _rel(first, last), e0, e1)
        trend["by_epoch"] = ep
        noise = _noise(_epoch_losses(steps, e0), _epoch_losses(steps, e1))
    if not trend:
        return None
    # Whole epochs average over far more data than a quarter of the logged steps: they decide.
    first, last, rel = (trend["epochs"] if "epochs" in trend else trend["steps"])[:3]
    trend["first"], trend["last"], trend["rel"] = first, last, rel
    trend["noise"] = noise
    if last < LOW_LOSS and first < LOW_LOSS:
        trend["verdict"] = "low"
    elif noise is not None and abs(last - first) <= noise:
        # Inside the noise: flat and precise is stuck; flat and noisy cannot tell yet.
        trend["verdict"] = "stuck" if noise < TREND_REL * abs(first) else "unclear"
    elif rel <= -TREND_REL:
        trend["verdict"] = "falling"
    elif rel >= TREND_REL:
        trend["verdict"] = "rising"
    else:
        trend["verdict"] = "stuck"
    trend["components"] = _component_trend(steps, epochs)
    return trend


def _component_trend(steps: list[dict], epochs: list[dict]) -> str:
    """Each component's mean at the start and at the end, on the same basis as the loss trend:
    the first and last epoch summaries, else the first and last quarter of the steps."""
    ep = [e for e in epochs if _components(e)]
    st = [r for r in steps if _components(r)]
    if len(ep) >= 2:
        first, last = ep[:1], ep[-1:]
        basis = f"epoch {ep[0].get('epoch', '?')} -> {ep[-1].get('epoch', '?')}"
    elif len(st) >= MIN_TREND_STEPS:
        q = len(st) // 4
        first, last = st[:q], st[-q:]
        basis = f"first {q} -> last {q} steps"
    else:
        return ""
    parts = []
    for name in _component_names(first + last):
        a = _mean(_finite(_components(r).get(name)) for r in first)
        b = _mean(_finite(_components(r).get(name)) for r in last)
        if a is None or b is None:
            continue
        change = f" ({fmt_signed_pct(_rel(a, b))})" if abs(a) > 1e-12 else ""
        parts.append(f"{name} {fmt_loss(a)} -> {fmt_loss(b)}{change}")
    return f"by component ({basis}): {', '.join(parts)}" if parts else ""


def _trend_saw(trend: dict) -> str:
    parts = []
    if "steps" in trend:
        first, last, rel, q = trend["steps"]
        parts.append(f"mean loss {fmt_loss(first)} over the first {q} steps, {fmt_loss(last)} over the last {q} "
                     f"({fmt_signed_pct(rel)})")
    if "epochs" in trend:
        first, last, rel, e0, e1 = trend["epochs"]
        parts.append(f"training loss {fmt_loss(first)} in epoch {e0}, {fmt_loss(last)} in epoch {e1} "
                     f"({fmt_signed_pct(rel)})")
        if len(trend["by_epoch"]) > 2:
            parts.append("by epoch: " + ", ".join(f"{e}: {fmt_loss(v)}" for e, v in trend["by_epoch"]))
    if trend.get("components"):
        parts.append(trend["components"])
    return "; ".join(parts)


def _check_trend(trend: dict | None, config: dict) -> list[Finding]:
    if trend is None:
        return []
    arrow = f"({fmt_loss(trend['first'])} -> {fmt_loss(trend['last'])})"
    saw = _trend_saw(trend)
    verdict = trend["verdict"]
    if verdict == "falling":
        return [Finding("good", f"loss is falling {arrow}", saw, "")]
    if verdict == "low":
        return [Finding("good", f"loss is already near zero {arrow}", saw, "")]
    if verdict == "unclear":
        return [Finding(
            "warning", f"no loss trend yet {arrow}: the change is inside the noise",
            f"{saw}; the step losses vary so much (the steps differ in tasks and grid sizes) that "
            f"only a change of more than {fmt_loss(trend['noise'])} would be a trend",
            "nothing to fix from this alone: run more steps (--max-batches, --epochs) to see a trend, and "
            "judge the run by its accuracies")]
    if verdict == "rising":
        return [Finding(
            "problem", f"loss is rising {arrow}", saw,
            f"lower --agent-lr (now {fmt_lr(config.get('agent_lr'))}), e.g. halve it; turn on gradient "
            "clipping; check the data around the point where the loss started to climb")]
    tips = [f"raise --agent-lr (now {fmt_lr(config.get('agent_lr'))}) to 1e-4 .. 1e-3"]
    if config.get("mode") == "frozen":
        tips.append("the Qwen backbone is frozen, so only the small output head can learn: "
                    "try --no-freeze-qwen")
    weights = config.get("weights") or {}
    if (weights.get("consistency") or 0) > 0 or (weights.get("bidirectional") or 0) > 0:
        tips.append("put the budget on the answers: --consistency-weight 0 --bidirectional-weight 0 "
                    "(the second view and the inverse task make three sequences per query where the "
                    "risk term alone needs one; benchmarks/learning.py fits its tasks faster without them)")
    tips.append("check that the training tasks load correctly and their answers are right")
    return [Finding("problem", "loss is stuck", saw, "; ".join(tips))]


def _check_negative(steps: list[dict], epochs: list[dict]) -> list[Finding]:
    out = []
    for name in _component_names(steps + epochs):
        bad = [(r, v) for r in steps + epochs
               if (v := _finite(_components(r).get(name))) is not None and v < -NEGATIVE_TOL]
        if not bad:
            continue
        lowest = min(v for _, v in bad)
        n_steps = sum(1 for r, _ in bad if r.get("kind") == "step")
        where = f"in {n_steps} of {len(steps)} steps" if n_steps else f"in {len(bad)} epoch summaries"
        out.append(Finding(
            "problem", f"the {name} part of the loss is negative",
            f"{name} was below zero {where}, first at {_where(bad[0][0])}, lowest {lowest:.4g}. "
            f"{name} measures a mismatch and cannot be below zero, so the training can lower the "
            "total loss by pushing it further down instead of solving tasks",
            "a negative value means a bug in the loss code or a changed loss formula: check "
            f"recent changes to how {name} is computed"))
    return out


def _component_names(records: list[dict]) -> list[str]:
    seen = {k for r in records for k in _components(r)}
    return [c for c in COMPONENTS if c in seen] + sorted(seen - set(COMPONENTS))


def _recent_components(steps: list[dict], epochs: list[dict]) -> tuple[dict[str, float], str]:
    """Mean of each component over the last quarter of steps (or the last epoch summary)."""
    with_comp = [r for r in steps if _components(r)]
    if with_comp:
        q = max(1, len(with_comp) // 4)
        recent = with_comp[-q:]
        where = f"the last {q} steps" if q > 1 else f"the last step ({recent[0].get('step', '?')})"
    else:
        recent = [e for e in epochs if _components(e)][-1:]
        if not recent:
            return {}, ""
        where = f"epoch {recent[0].get('epoch', '?')}"
    means = {}
    for name in _component_names(recent):
        m = _mean(_finite(_components(r).get(name)) for r in recent)
        if m is not None:
            means[name] = m
    return means, where


def _check_dominating(means: dict[str, float], where: str, config: dict) -> list[Finding]:
    if not means or any(v < -NEGATIVE_TOL for v in means.values()):
        return []   # negative components make shares meaningless; reported on their own
    weights = config.get("weights")
    assumed = not isinstance(weights, dict)
    weighted = {}
    for name, m in means.items():
        w = 1.0 if assumed else _finite(weights.get(name))
        if w is not None and w != 0:
            weighted[name] = (w, w * m)
    total = sum(v for _, v in weighted.values())
    if len(weighted) < 2 or total <= 0:
        return []
    name, (w, value) = max(weighted.items(), key=lambda kv: kv[1][1])
    share = value / total
    if share <= DOMINANT_SHARE:
        return []
    others = ", ".join(f"{n} {v / total:.0%}" for n, (_, v) in weighted.items() if n != name)
    note = " (no weights in config.json; assumed 1 each)" if assumed else ""
    return [Finding(
        "warning", f"{name} dominates the loss ({share:.0%})",
        f"over {where}, weight x mean of {name} is {value:.3g} = {share:.0%} of the weighted total "
        f"{total:.3g}; the others: {others}{note}",
        f"lower --{name}-weight (now {w:g}) or raise the other weights, so that every part of the "
        "loss steers training; otherwise the other parts barely affect the gradients")]


def _check_range(means: dict[str, float], where: str) -> list[Finding]:
    return [Finding(
        "warning", f"{name} is worse than a uniform guess",
        f"mean {name} over {where} is {m:.3g}; about 1.0 is what a uniform guess scores, 0 is perfect",
        "the model is confidently wrong on this part: lower the learning rate if it climbed during "
        "training, and check that the answers in the data are right")
        for name, m in means.items() if m > COMPONENT_MAX]


def _check_frozen(config: dict) -> list[Finding]:
    if config.get("mode") != "frozen":
        return []
    return [Finding(
        "warning", "the Qwen backbone is frozen",
        "mode is \"frozen\": only the small output head on top of Qwen is trained",
        "if the loss does not fall, train the backbone too with --no-freeze-qwen (or --lora, "
        "which needs less GPU memory)")]


def _check_lr(trend: dict | None, config: dict) -> list[Finding]:
    lr = _finite(config.get("agent_lr"))
    if lr is None or lr >= LOW_LR or trend is None or trend["verdict"] != "stuck":
        return []
    return [Finding(
        "warning", f"learning rate {lr:g} is low",
        f"agent_lr is {lr:g} and the loss is not falling",
        "use --agent-lr between 1e-4 and 1e-3 (presets: conservative 5e-5, medium 1e-4, "
        "aggressive 5e-4)")]


def _check_memory(epochs: list[dict], config: dict) -> list[Finding]:
    if config.get("memory") is not True or not epochs:
        return []
    last = epochs[-1]
    adds, queries = _finite(last.get("memory_adds")), _finite(last.get("memory_queries"))
    if adds is None:
        return []
    size = _finite(last.get("memory_size"))
    size_text = f"; the memory bank holds {int(size)} entries" if size is not None else ""
    q_text = f"{int(queries)}" if queries is not None else "an unknown number of"
    size_text += _memory_growth(epochs)
    ep = last.get("epoch", "?")
    if adds > 0:
        return [Finding("good", "memory bank is filling",
                        f"epoch {ep}: {int(adds)} solved queries stored out of {q_text} queries{size_text}",
                        "")]
    known = _finite(last.get("memory_known"))
    if known:  # what was solved was stored before: nothing new to add, nothing wrong
        return [Finding("good", "memory bank holds what was solved",
                        f"epoch {ep}: 0 new entries out of {q_text} queries: the {int(known)} solved this "
                        f"epoch were already stored about as well{size_text}", "")]
    # the memory checks the epoch's trained queries: their accuracy when it was measured
    acc = _finite(last.get("batch_accuracy"))
    if acc is None:
        acc = _finite(last.get("train_accuracy"))
    saw = f"epoch {ep}: 0 solved queries stored out of {q_text} queries{size_text}"
    if acc == 0:
        saw += ("; training accuracy is 0, so the model has not solved anything yet and there was "
                "nothing verified to store (expected for a fresh model; the real issue is the accuracy)")
        tip = ("train for more steps, raise the learning rate, or start on an easier subset of tasks "
               "so that some get solved and can be stored")
    else:
        if acc is not None:
            saw += f"; but training accuracy is {fmt_pct(acc)}, so some tasks were solved and none was stored"
        tip = ("check that solved queries are verified and written to the memory bank (the check "
               "or the write may be failing)")
    return [Finding("warning", f"memory bank received 0 adds out of {q_text} queries", saw, tip)]


def _memory_growth(epochs: list[dict]) -> str:
    """"; size by epoch: 3, 9, 12 (growing)", or "" with fewer than two epochs."""
    sizes = [int(v) for e in epochs if (v := _finite(e.get("memory_size"))) is not None]
    if len(sizes) < 2:
        return ""
    verdict = "growing" if sizes[-1] > sizes[0] else "not growing"
    return f"; size by epoch: {', '.join(map(str, sizes))} ({verdict})"


def _check_validation(epochs: list[dict], config: dict) -> list[Finding]:
    val = [(e.get("epoch", "?"), v) for e in epochs if (v := _finite(e.get("val_accuracy"))) is not None]
    out = []
    if len(val) >= VAL_PATIENCE and all(v == 0 for _, v in val):
        train = _finite(epochs[-1].get("train_accuracy"))
        train_text = f"; training accuracy is {fmt_pct(train)}" if train is not None else ""
        advice = ("if training accuracy is also near 0 the model has not learned yet (see the loss); if it "
                  "is high, the model memorises training tasks: use more augmentation or fewer epochs")
        if config.get("init"):  # a fine-tune: what it solves on new tasks comes from where it started
            advice = (f"the run started from the trained weights of {config['init']}: a short fine-tune seldom "
                      "changes which new tasks a model solves without test-time training; measure it with "
                      "arc-efe evaluate --checkpoint RUN_DIR (test-time training per task), or train longer")
        out.append(Finding(
            "warning", f"validation accuracy is still 0 after {len(val)} epochs",
            f"no validation task solved in epochs {val[0][0]} .. {val[-1][0]}{train_text}", advice))
    elif len(val) >= 2 and val[-1][1] > val[0][1]:
        out.append(Finding(
            "good", f"validation accuracy is rising ({fmt_pct(val[0][1])} -> {fmt_pct(val[-1][1])})",
            f"epoch {val[0][0]}: {fmt_pct(val[0][1])}, epoch {val[-1][0]}: {fmt_pct(val[-1][1])}, "
            f"best {fmt_pct(max(v for _, v in val))}", ""))
    return out


def _check_in_context(epochs: list[dict], config: dict) -> list[Finding]:
    """The in-context curve: fresh generated tasks answered without test-time training."""
    icl = [(e.get("epoch", "?"), v, e.get("icl_total")) for e in epochs
           if (v := _finite(e.get("icl_accuracy"))) is not None]
    if not icl:
        return []
    first, last = icl[0], icl[-1]
    saw = (f"exact on {last[2]} fresh generated tasks: epoch {first[0]} {fmt_pct(first[1])}, "
           f"epoch {last[0]} {fmt_pct(last[1])}, best {fmt_pct(max(v for _, v, _ in icl))}")
    if last[1] > 0:
        rising = len(icl) >= 2 and last[1] > first[1]
        return [Finding("good", "in-context rule learning " + ("is rising" if rising else "is there"), saw, "")]
    if len(icl) < VAL_PATIENCE:
        return []
    tips = ["in-context learning comes from many fresh tasks: train on generated tasks (--data "
            "synthetic:6 --curriculum, see the README's pretraining recipe) for longer"]
    if config.get("positions") == "1d":
        tips.append("use grid positions (--positions 2d): with the token stream alone it comes much later")
    tips.append("or start from a pretrained model and rely on test-time training (arc-efe evaluate --ttt-seconds)")
    return [Finding("warning", f"no fresh task solved in context after {len(icl)} epochs", saw, "; ".join(tips))]


def _check_overfit(epochs: list[dict]) -> list[Finding]:
    for e in reversed(epochs):
        train, val = _finite(e.get("train_accuracy")), _finite(e.get("val_accuracy"))
        if train is None or val is None:
            continue
        if train >= val + OVERFIT_GAP and train >= OVERFIT_MIN_TRAIN:
            return [Finding(
                "warning", f"training accuracy far above validation ({fmt_pct(train)} vs {fmt_pct(val)})",
                f"epoch {e.get('epoch', '?')}: training accuracy {fmt_pct(train)}, validation {fmt_pct(val)}",
                "the model memorises the training tasks instead of learning rules that carry over: "
                "stop at the epoch with the best validation accuracy, add augmentation, lower the "
                "learning rate, or use LoRA instead of full fine-tuning")]
        return []
    return []


def _check_throughput(steps: list[dict]) -> list[Finding]:
    speeds = [v for r in steps if (v := _finite(r.get("tokens_per_s"))) is not None and v > 0]
    if not speeds:
        return []
    med = statistics.median(speeds)
    return [Finding("good", f"speed ~{med:.0f} tokens/s",
                    f"median over {len(speeds)} steps: {med:.0f} tokens/s "
                    f"(slowest {min(speeds):.0f}, fastest {max(speeds):.0f})", "")]


# ---------------------------------------------------------------- public API

def diagnose(config: dict, records: list[dict]) -> list[Finding]:
    """Findings about one run, most important first (problems, warnings, then good signs)."""
    config = config if isinstance(config, dict) else {}
    records = [r for r in records if isinstance(r, dict)]
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    if not steps and not epochs:
        return [Finding("warning", "no steps logged yet",
                        f"metrics hold no step or epoch lines ({len(records)} records in all)",
                        "if the run is still starting (loading the model takes minutes), wait; "
                        "otherwise look at the run's console output for the error that stopped it")]
    trend = _loss_trend(steps, epochs)
    means, where = _recent_components(steps, epochs)
    rollbacks = [r for r in records if r.get("kind") == "rollback"]
    findings = (_check_nonfinite(steps, epochs) + _check_rollbacks(rollbacks) + _check_trend(trend, config)
                + _check_negative(steps, epochs) + _check_dominating(means, where, config)
                + _check_range(means, where) + _check_frozen(config) + _check_lr(trend, config)
                + _check_memory(epochs, config) + _check_validation(epochs, config) + _check_in_context(epochs, config)
                + _check_overfit(epochs) + _check_throughput(steps))
    return sorted(findings, key=lambda f: _RANK.get(f.severity, len(_RANK)))


def write_diagnosis(run_dir: str | Path, config: dict, records: list[dict]) -> str:
    """Diagnose, render and write `diagnosis.txt` in run_dir (atomically); return the text."""
    text = render(diagnose(config, records), header=f"Diagnosis of {run_dir}")
    atomic_write_text(Path(run_dir) / "diagnosis.txt", text)
    return text

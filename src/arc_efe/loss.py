"""EFELoss: the Expected Free Energy objective, as terms that mean something.

Every component is a proper divergence or entropy, normalised so that a uniform guess
scores about 1 and a perfect, confident answer scores 0; none can be negative.

- risk: KL(preferred || predicted) over answer tokens, / ln V. The preferred outcome is
  the target, optionally label-smoothed; without smoothing this is cross-entropy / ln V.
- ambiguity: entropy of the predicted answer distribution, / ln V.
- consistency: Jensen-Shannon divergence between the predictions for two views of the
  same query, mapped back so that cells and colours line up, / ln 2 (in [0, 1]).
- bidirectional: the risk of the inverse task (predict a pair's input from its output).
- step: the users' refinement term. arc-efe has no refinement step (a draft-revising pass
  with a halting head was trained once, but no answer path used it, so it was removed): the
  term is 0 and logged as 0; its weight stays so configurations and the five-term layout of
  the users' reports stay stable. `EFELoss(step=...)` still adds a given step loss.

Default weights follow the users' own: risk 1.0, consistency 1.0, bidirectional 0.5,
step 0.1, ambiguity 0.0 (on labelled cells it duplicates risk).

Normalisation is per answer token: each component is a sum over its tokens divided by a
count. Pass `counts` with the totals of the whole gradient-accumulation window so that
micro-batches of different sizes weigh each token equally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

COMPONENTS = ("risk", "ambiguity", "consistency", "bidirectional", "step")
DEFAULT_WEIGHTS = {"risk": 1.0, "ambiguity": 0.0, "consistency": 1.0, "bidirectional": 0.5, "step": 0.1}


@dataclass
class EFEOutput:
    total: torch.Tensor  # differentiable
    components: dict[str, float]  # detached, for logging (already normalised)

    def __iter__(self):  # allows `total, components = loss_fn(...)`
        return iter((self.total, self.components))


def risk_sum(logits: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Sum over tokens of KL(preferred || softmax(logits)) / ln V."""
    v = logits.shape[-1]
    logp = F.log_softmax(logits.float(), dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if smoothing <= 0.0:
        return nll.sum() / math.log(v)
    # preferred = (1 - s) * onehot + s / V;  KL = CE(preferred, p) - H(preferred)
    ce = (1.0 - smoothing) * nll - (smoothing / v) * logp.sum(-1)
    hi, lo = 1.0 - smoothing + smoothing / v, smoothing / v
    h_pref = -(hi * math.log(hi) + (v - 1) * lo * math.log(lo))
    return (ce - h_pref).clamp_min(0.0).sum() / math.log(v)


def entropy_sum(logits: torch.Tensor) -> torch.Tensor:
    """Sum over tokens of H(softmax(logits)) / ln V."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum() / math.log(logits.shape[-1])


def js_sum(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Sum over rows of JS(softmax(a) || softmax(b)) / ln 2, each row in [0, 1]."""
    lpa = F.log_softmax(logits_a.float(), dim=-1)
    lpb = F.log_softmax(logits_b.float(), dim=-1)
    lpm = torch.logsumexp(torch.stack([lpa, lpb]), dim=0) - math.log(2.0)
    kl_am = (lpa.exp() * (lpa - lpm)).sum(-1)
    kl_bm = (lpb.exp() * (lpb - lpm)).sum(-1)
    return (0.5 * (kl_am + kl_bm)).clamp_min(0.0).sum() / math.log(2.0)


class EFELoss(nn.Module):
    """Weighted sum of the EFE components; returns the total and every component.

        loss_fn = EFELoss()
        out = loss_fn(logits, targets)                      # risk (+ ambiguity) only
        out = loss_fn(logits, targets, consistency=(la, lb), inverse=(li, ti))
        out.total.backward(); print(out.components)

    `logits` (N, V) are the predictions at the N answer tokens, `targets` (N,) the tokens.
    `consistency` holds two (M, V) tensors for the same M cells seen through two views,
    already aligned (same cell, same colour index). `inverse` holds the logits and targets
    of the inverse task. `step` is a refinement loss, when a caller has one (training has none).
    """

    def __init__(self, risk_weight: float = 1.0, ambiguity_weight: float = 0.0,
                 consistency_weight: float = 1.0, bidirectional_weight: float = 0.5,
                 step_weight: float = 0.1, label_smoothing: float = 0.0):
        super().__init__()
        self.weights = {"risk": risk_weight, "ambiguity": ambiguity_weight,
                        "consistency": consistency_weight, "bidirectional": bidirectional_weight,
                        "step": step_weight}
        for name, w in self.weights.items():
            if w < 0:
                raise ValueError(f"{name} weight must be >= 0, got {w}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, *,
                consistency: tuple[torch.Tensor, torch.Tensor] | None = None,
                inverse: tuple[torch.Tensor, torch.Tensor] | None = None,
                step: torch.Tensor | None = None,
                counts: dict[str, int] | None = None) -> EFEOutput:
        counts = dict(counts or {})
        counts.setdefault("answer", targets.numel())
        zero = logits.new_zeros((), dtype=torch.float32)
        sums = {"risk": risk_sum(logits, targets, self.label_smoothing),
                "ambiguity": entropy_sum(logits) if self.weights["ambiguity"] > 0 else None}
        denom = {"risk": counts["answer"], "ambiguity": counts["answer"]}
        if consistency is not None and consistency[0].numel() > 0:
            sums["consistency"] = js_sum(*consistency)
            denom["consistency"] = counts.get("consistency", consistency[0].shape[0])
        if inverse is not None and inverse[1].numel() > 0:
            sums["bidirectional"] = risk_sum(inverse[0], inverse[1], self.label_smoothing)
            denom["bidirectional"] = counts.get("inverse", inverse[1].numel())
        values = {name: zero for name in COMPONENTS}
        for name, s in sums.items():
            if s is not None:
                values[name] = s / max(denom[name], 1)
        if step is not None:
            values["step"] = step
        total = sum(self.weights[name] * values[name] for name in COMPONENTS)
        if self.weights["ambiguity"] == 0:  # still report it, without a graph
            with torch.no_grad():
                values["ambiguity"] = entropy_sum(logits) / max(denom["ambiguity"], 1)
        return EFEOutput(total, {name: float(v.detach()) for name, v in values.items()})

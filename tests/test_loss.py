"""EFELoss: every component >= 0, ~1 for a uniform guess, 0 for a perfect confident answer."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from arc_efe.loss import EFELoss, js_sum, risk_sum

V = 16
ROOT = Path(__file__).resolve().parents[1]


def _perfect(targets, scale=60.0):
    return torch.nn.functional.one_hot(targets, V).float() * scale


def test_uniform_guess_scores_about_one():
    targets = torch.randint(0, V, (50,))
    logits = torch.zeros(50, V)
    out = EFELoss(ambiguity_weight=1.0)(logits, targets, inverse=(logits, targets))
    assert out.components["risk"] == pytest.approx(1.0, abs=1e-5)
    assert out.components["ambiguity"] == pytest.approx(1.0, abs=1e-5)
    assert out.components["bidirectional"] == pytest.approx(1.0, abs=1e-5)


def test_perfect_confident_answer_scores_zero():
    targets = torch.randint(0, V, (40,))
    logits = _perfect(targets)
    out = EFELoss(ambiguity_weight=1.0)(logits, targets, consistency=(logits, logits.clone()),
                                        inverse=(logits, targets))
    for name in ("risk", "ambiguity", "consistency", "bidirectional", "step"):
        assert out.components[name] == pytest.approx(0.0, abs=1e-6), name
    assert float(out.total) == pytest.approx(0.0, abs=1e-6)


def test_components_never_negative_on_random_inputs():
    g = torch.Generator().manual_seed(0)
    loss = EFELoss(ambiguity_weight=0.3, label_smoothing=0.1)
    for _ in range(50):
        logits = torch.randn(30, V, generator=g) * 5
        other = torch.randn(30, V, generator=g) * 5
        targets = torch.randint(0, V, (30,), generator=g)
        out = loss(logits, targets, consistency=(logits, other), inverse=(other, targets))
        assert all(v >= 0 for v in out.components.values()), out.components
        assert 0 <= out.components["consistency"] <= 1


def test_consistency_zero_for_identical_views_and_one_for_disjoint():
    logits = torch.randn(20, V)
    assert float(js_sum(logits, logits)) == pytest.approx(0.0, abs=1e-6)
    a = _perfect(torch.zeros(5, dtype=torch.long))
    b = _perfect(torch.ones(5, dtype=torch.long))
    assert float(js_sum(a, b)) / 5 == pytest.approx(1.0, abs=1e-5)


def test_label_smoothing_perfect_means_matching_the_preferred_distribution():
    s = 0.1
    targets = torch.randint(0, V, (10,))
    pref = torch.full((10, V), s / V)
    pref[torch.arange(10), targets] += 1 - s
    assert float(risk_sum(pref.log(), targets, s)) == pytest.approx(0.0, abs=1e-5)
    assert float(risk_sum(_perfect(targets, 10.0), targets, s)) > 0  # over-confident: penalised


def test_risk_is_cross_entropy_over_ln_v_without_smoothing():
    logits, targets = torch.randn(12, V), torch.randint(0, V, (12,))
    ce = torch.nn.functional.cross_entropy(logits, targets)
    assert float(EFELoss()(logits, targets).components["risk"]) == pytest.approx(float(ce) / math.log(V), rel=1e-5)


def test_weights_and_total():
    logits, targets = torch.randn(12, V), torch.randint(0, V, (12,))
    other = torch.randn(12, V)
    out = EFELoss(risk_weight=2.0, consistency_weight=0.5, bidirectional_weight=0.25)(
        logits, targets, consistency=(logits, other), inverse=(other, targets))
    c = out.components
    assert float(out.total) == pytest.approx(2 * c["risk"] + 0.5 * c["consistency"] + 0.25 * c["bidirectional"], rel=1e-5)
    with pytest.raises(ValueError):
        EFELoss(risk_weight=-1)


def test_step_component_is_zero_without_a_refinement_loss():
    logits, targets = torch.randn(4, V), torch.randint(0, V, (4,))
    assert EFELoss()(logits, targets).components["step"] == 0.0


def test_gradients_flow_to_what_each_term_uses():
    logits = torch.randn(10, V, requires_grad=True)
    other = torch.randn(10, V, requires_grad=True)
    inv = torch.randn(10, V, requires_grad=True)
    targets = torch.randint(0, V, (10,))
    EFELoss(bidirectional_weight=0.0)(logits, targets, consistency=(logits, other),
                                       inverse=(inv, targets)).total.backward()
    assert logits.grad.abs().sum() > 0 and other.grad.abs().sum() > 0
    assert inv.grad is None or inv.grad.abs().sum() == 0  # weight 0: no gradient


def test_accumulation_counts_weigh_every_token_equally():
    """Two micro-batches normalised by the window total equal one batch of all tokens."""
    logits, targets = torch.randn(30, V), torch.randint(0, V, (30,))
    loss = EFELoss()
    whole = loss(logits, targets).components["risk"]
    parts = sum(loss(logits[s], targets[s], counts={"answer": 30}).components["risk"]
                for s in (slice(0, 7), slice(7, 30)))
    assert parts == pytest.approx(whole, rel=1e-5)


def test_users_check_runs_verbatim_from_repo_root():
    out = subprocess.run([sys.executable, "-c",
                          "from loss_function import EFELoss; EFELoss(); print('Loss function OK')"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "Loss function OK"

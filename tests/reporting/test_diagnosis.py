import json
import math

import pytest

from arc_efe.errors import ArcEfeError
from arc_efe.reporting.diagnosis import diagnose, write_diagnosis
from arc_efe.reporting.findings import Finding, render
from arc_efe.reporting.runlog import load_run

HEALTHY_CONFIG = {"mode": "lora", "agent_lr": 1e-4, "qwen_lr": 2e-5, "memory": True, "epochs": 3,
                  "weights": {"risk": 1.0, "consistency": 0.5, "bidirectional": 0.5, "step": 0.5,
                              "ambiguity": 0.5}}


def comps(level=0.8, **over):
    c = {"risk": level, "ambiguity": level, "consistency": level, "bidirectional": level, "step": level}
    c.update(over)
    return c


def step_lines(losses, epoch=1, start=1, components=None, tokens_per_s=1200.0):
    out = []
    for i, loss in enumerate(losses):
        c = components(i) if callable(components) else (components or comps(min(1.0, loss / 5)))
        out.append({"kind": "step", "step": start + i, "epoch": epoch, "loss": loss, "components": c,
                    "lr": 1e-4, "grad_norm": 1.0, "tokens_per_s": tokens_per_s + i})
    return out


def epoch_line(epoch, train_loss, train_acc=0.1, val_acc=0.05, adds=5, queries=100, nan_skipped=0,
               components=None):
    return {"kind": "epoch", "epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
            "val_accuracy": val_acc, "memory_adds": adds, "memory_queries": queries,
            "memory_size": adds * epoch, "nan_skipped": nan_skipped,
            "components": components or comps(min(1.0, train_loss / 5))}


def healthy_run():
    recs = []
    loss = 5.0
    for ep in range(1, 4):
        losses = [loss - 0.05 * i for i in range(10)]
        recs += step_lines(losses, epoch=ep, start=(ep - 1) * 10 + 1)
        recs.append(epoch_line(ep, sum(losses) / 10, train_acc=0.1 * ep, val_acc=0.05 * ep, adds=3 * ep))
        loss = losses[-1]
    return recs


def titles(findings, severity=None):
    return [f.title for f in findings if severity is None or f.severity == severity]


def text_of(f: Finding) -> str:
    return f"{f.title} {f.saw} {f.try_next}"


def test_stuck_loss_is_a_problem_with_lr_advice():
    cfg = {"mode": "frozen", "agent_lr": 1e-5, "memory": False}
    recs = step_lines([5.1, 5.12, 5.08, 5.1] * 6)
    found = diagnose(cfg, recs)
    stuck = [f for f in found if f.title == "loss is stuck"]
    assert len(stuck) == 1 and stuck[0].severity == "problem"
    assert "1e-05" in stuck[0].try_next and "--no-freeze-qwen" in stuck[0].try_next
    assert "first 6 steps" in stuck[0].saw
    assert "learning rate 1e-05 is low" in titles(found, "warning")
    assert not any("falling" in t or "rising" in t for t in titles(found))


def test_stuck_loss_names_the_auxiliary_terms_only_when_they_are_on():
    recs = step_lines([5.1, 5.12, 5.08, 5.1] * 6)

    def stuck_tips(weights):
        cfg = {"mode": "full", "agent_lr": 1e-4, "memory": False, "weights": weights}
        return [f.try_next for f in diagnose(cfg, recs) if f.title == "loss is stuck"][0]

    assert "--consistency-weight 0 --bidirectional-weight 0" in stuck_tips(
        {"risk": 1.0, "consistency": 1.0, "bidirectional": 0.5})
    assert "--consistency-weight 0" not in stuck_tips({"risk": 1.0, "consistency": 0.0, "bidirectional": 0.0})


def test_falling_loss_is_good_and_not_stuck():
    found = diagnose(HEALTHY_CONFIG, step_lines([5.0 - 0.1 * i for i in range(20)]))
    good = [t for t in titles(found, "good") if t.startswith("loss is falling")]
    assert good == ["loss is falling (4.80 -> 3.30)"]
    assert not any("stuck" in t or "rising" in t for t in titles(found))


def test_rising_loss_is_a_problem():
    found = diagnose(HEALTHY_CONFIG, step_lines([3.0 + 0.1 * i for i in range(20)]))
    assert any(f.severity == "problem" and f.title.startswith("loss is rising") for f in found)
    assert "learning rate" not in " ".join(titles(found, "warning"))


def test_epoch_losses_decide_the_trend():
    # Noisy flat steps inside each epoch, but the epoch means fall clearly.
    recs = []
    for ep, base in enumerate([5.0, 4.5, 4.0], 1):
        recs += step_lines([base, base + 0.3, base - 0.3, base] * 3, epoch=ep, start=ep * 100)
        recs.append(epoch_line(ep, base))
    found = diagnose(HEALTHY_CONFIG, recs)
    assert any(t.startswith("loss is falling (5.00 -> 4.00)") for t in titles(found, "good"))


def test_a_move_inside_the_noise_is_no_trend():
    """A short fine-tune: step losses vary by tasks and sizes, the epoch means move less than
    that noise allows to tell; neither stuck nor rising, and says so. A precise flat loss is
    still stuck, and a rise beyond the noise still rising."""
    noisy = [0.2, 0.5, 0.3, 0.6, 0.25, 0.45, 0.35, 0.55]
    recs = []
    for ep, shift in enumerate([0.0, 0.02, 0.04], 1):
        losses = [v + shift for v in noisy]
        recs += step_lines(losses, epoch=ep, start=ep * 100)
        recs.append(epoch_line(ep, sum(losses) / len(losses)))
    found = diagnose(HEALTHY_CONFIG, recs)
    unclear = [f for f in found if f.title.startswith("no loss trend yet")]
    assert len(unclear) == 1 and unclear[0].severity == "warning", titles(found)
    assert "inside the noise" in unclear[0].title and "run more steps" in unclear[0].try_next
    assert not any(t.startswith(("loss is stuck", "loss is rising", "loss is falling")) for t in titles(found))

    flat = []
    for ep in (1, 2):
        flat += step_lines([5.1, 5.12, 5.08, 5.1] * 3, epoch=ep, start=ep * 100)
        flat.append(epoch_line(ep, 5.1))
    assert "loss is stuck" in titles(diagnose(HEALTHY_CONFIG, flat), "problem")

    rising = []
    for ep, shift in enumerate([0.0, 0.5], 1):
        rising += step_lines([v + shift for v in noisy], epoch=ep, start=ep * 100)
        rising.append(epoch_line(ep, sum(noisy) / len(noisy) + shift))
    assert any(t.startswith("loss is rising") for t in titles(diagnose(HEALTHY_CONFIG, rising), "problem"))


def test_negative_component_is_a_problem_naming_it():
    recs = step_lines([5.0 - 0.1 * i for i in range(12)], components=comps(0.7, consistency=-0.3))
    found = diagnose(HEALTHY_CONFIG, recs)
    neg = [f for f in found if f.severity == "problem" and "negative" in f.title]
    assert len(neg) == 1 and "consistency" in neg[0].title
    assert "12 of 12 steps" in neg[0].saw and "bug" in neg[0].try_next


def test_tiny_negative_rounding_is_ignored():
    recs = step_lines([5.0 - 0.1 * i for i in range(12)], components=comps(0.7, step=-1e-9))
    assert not any("negative" in f.title for f in diagnose(HEALTHY_CONFIG, recs))


def test_nan_loss_is_a_problem_naming_the_first_step():
    losses = [5.0 - 0.1 * i for i in range(12)]
    losses[7] = float("nan")
    losses[9] = float("inf")
    found = diagnose(HEALTHY_CONFIG, step_lines(losses))
    nan = [f for f in found if f.severity == "problem" and "NaN" in f.title]
    assert len(nan) == 1
    assert "2 of 12 step lines" in nan[0].saw and "step 8" in nan[0].saw
    assert "learning rate" in nan[0].try_next and "clipping" in nan[0].try_next


def test_nan_component_is_a_problem():
    recs = step_lines([5.0] * 3)
    recs[1]["components"]["ambiguity"] = math.nan
    nan = [f for f in diagnose({}, recs) if "NaN" in f.title]
    assert len(nan) == 1 and "ambiguity" in nan[0].saw


def test_nan_skipped_is_a_problem():
    recs = healthy_run()
    recs[-1]["nan_skipped"] = 4
    nan = [f for f in diagnose(HEALTHY_CONFIG, recs) if "NaN" in f.title]
    assert len(nan) == 1 and nan[0].severity == "problem"
    assert "skipped 4 step(s)" in nan[0].saw and "epoch 3" in nan[0].saw


def test_memory_without_adds_says_nothing_was_solved():
    recs = step_lines([5.1] * 10) + [epoch_line(1, 5.1, train_acc=0.0, val_acc=0.0, adds=0, queries=2725)]
    found = diagnose({"memory": True, "agent_lr": 1e-4}, recs)
    mem = [f for f in found if "memory" in f.title]
    assert len(mem) == 1 and mem[0].severity == "warning"
    assert mem[0].title == "memory bank received 0 adds out of 2725 queries"
    assert "not solved anything yet" in mem[0].saw
    assert "easier subset" in mem[0].try_next


def test_memory_without_adds_but_some_accuracy_points_at_the_write():
    recs = step_lines([5.1] * 10) + [epoch_line(1, 5.1, train_acc=0.2, adds=0, queries=50)]
    mem = [f for f in diagnose({"memory": True}, recs) if "memory" in f.title]
    assert len(mem) == 1 and "20.0%" in mem[0].saw and "not solved" not in mem[0].saw


def test_memory_without_adds_because_solved_queries_were_stored_already_is_no_warning():
    recs = step_lines([5.1] * 10) + [epoch_line(1, 5.1, train_acc=0.0, adds=0, queries=600)]
    recs[-1].update(batch_accuracy=1 / 600, memory_known=1, memory_size=4)
    mem = [f for f in diagnose({"memory": True}, recs) if "memory" in f.title]
    assert len(mem) == 1 and mem[0].severity == "good"
    assert "the 1 solved this epoch were already stored" in mem[0].saw and "holds 4 entries" in mem[0].saw
    recs[-1]["memory_known"] = 0  # solved and not stored: the write is the suspect
    mem = [f for f in diagnose({"memory": True}, recs) if "memory" in f.title]
    assert mem[0].severity == "warning" and "0.17%" in mem[0].saw


@pytest.mark.parametrize("cfg", [{}, {"memory": False}])
def test_memory_off_gives_no_memory_finding(cfg):
    recs = step_lines([5.1] * 10) + [epoch_line(1, 5.1, train_acc=0.0, adds=0, queries=0)]
    assert not any("memory" in text_of(f).lower() for f in diagnose(cfg, recs))


def test_frozen_backbone_is_a_warning():
    found = diagnose({**HEALTHY_CONFIG, "mode": "frozen"}, healthy_run())
    frozen = [f for f in found if "frozen" in f.title]
    assert len(frozen) == 1 and frozen[0].severity == "warning"
    assert "--no-freeze-qwen" in frozen[0].try_next


def test_healthy_run_has_no_false_alarms():
    found = diagnose(HEALTHY_CONFIG, healthy_run())
    assert [f for f in found if f.severity != "good"] == []
    good = titles(found, "good")
    assert any(t.startswith("loss is falling") for t in good)
    assert any(t.startswith("validation accuracy is rising") for t in good)
    assert "memory bank is filling" in good
    assert any(t.startswith("speed ~") for t in good)
    text = render(found)
    assert "No problems found." in text and "PROBLEM" not in text and "WARNING" not in text


def test_dominating_component_is_a_warning():
    recs = step_lines([5.0 - 0.1 * i for i in range(12)],
                      components=comps(0.05, risk=0.9))
    cfg = {**HEALTHY_CONFIG, "weights": {"risk": 2.0, "consistency": 1.0, "bidirectional": 0.5,
                                         "step": 0.5, "ambiguity": 0.0}}
    dom = [f for f in diagnose(cfg, recs) if "dominates" in f.title]
    # risk: 2.0 * 0.9 = 1.8 of 1.8 + 0.05 + 0.025 + 0.025 = 1.9 -> 95%; ambiguity has weight 0
    assert len(dom) == 1 and dom[0].severity == "warning"
    assert dom[0].title == "risk dominates the loss (95%)"
    assert "ambiguity" not in dom[0].saw


def test_no_dominance_when_only_one_component_is_weighted():
    recs = step_lines([5.0 - 0.1 * i for i in range(12)], components=comps(0.05, risk=0.9))
    cfg = {**HEALTHY_CONFIG, "weights": {"risk": 1.0, "consistency": 0.0, "bidirectional": 0.0,
                                         "step": 0.0, "ambiguity": 0.0}}
    assert not any("dominates" in f.title for f in diagnose(cfg, recs))


def test_component_above_uniform_guess_is_a_warning():
    recs = step_lines([5.0 - 0.1 * i for i in range(12)], components=comps(0.8, bidirectional=2.4))
    bad = [f for f in diagnose(HEALTHY_CONFIG, recs) if "uniform" in f.title]
    assert len(bad) == 1 and bad[0].severity == "warning" and "bidirectional" in bad[0].title


def test_validation_zero_for_patience_epochs_is_a_warning():
    recs = healthy_run()
    for r in recs:
        if r["kind"] == "epoch":
            r["val_accuracy"] = 0.0
    found = diagnose(HEALTHY_CONFIG, recs)
    assert "validation accuracy is still 0 after 3 epochs" in titles(found, "warning")
    advice = [f.try_next for f in found if f.title.startswith("validation accuracy is still 0")][0]
    assert "memorises" in advice and "fine-tune" not in advice
    # a fine-tune of trained weights: the advice says where its new-task answers come from
    tuned = diagnose({**HEALTHY_CONFIG, "init": "models/arc-efe-tiny"}, recs)
    advice = [f.try_next for f in tuned if f.title.startswith("validation accuracy is still 0")][0]
    assert "started from the trained weights of models/arc-efe-tiny" in advice and "arc-efe evaluate" in advice


def test_overfitting_is_a_warning():
    recs = healthy_run()
    recs[-1].update(train_accuracy=0.9, val_accuracy=0.1)
    over = [f for f in diagnose(HEALTHY_CONFIG, recs) if "far above validation" in f.title]
    assert len(over) == 1 and over[0].severity == "warning" and "90.0%" in over[0].title


def test_findings_are_ordered_problems_warnings_good():
    cfg = {"mode": "frozen", "agent_lr": 1e-5, "memory": True}
    recs = step_lines([5.1] * 12, components=comps(0.9, consistency=-0.2))
    recs.append(epoch_line(1, 5.1, train_acc=0.0, val_acc=0.0, adds=0, queries=2725))
    found = diagnose(cfg, recs)
    sev = [f.severity for f in found]
    assert sev == sorted(sev, key=["problem", "warning", "good"].index)
    assert {"problem", "warning", "good"} <= set(sev)
    text = render(found, header="run x")
    assert text.startswith("run x\n")
    assert text.index("PROBLEM") < text.index("WARNING") < text.index("GOOD")
    assert "No problems found." not in text


def test_no_records_gives_one_warning():
    found = diagnose({}, [])
    assert len(found) == 1 and found[0].severity == "warning"
    assert found[0].title == "no steps logged yet"


def test_running_run_with_few_steps_does_not_guess_a_trend():
    found = diagnose(HEALTHY_CONFIG, step_lines([5.0, 5.0, 5.0]))
    assert not any(t.startswith("loss is") for t in titles(found))
    assert [f.severity for f in found] == ["good"]   # just the speed


def test_render_format():
    f = Finding("problem", "loss is stuck", "mean loss 5.10", "raise --agent-lr")
    text = render([f, Finding("good", "speed ~1200 tokens/s", "median 1200", "")])
    assert "PROBLEM  loss is stuck\n  saw: mean loss 5.10\n  try: raise --agent-lr\n" in text
    assert "GOOD     speed ~1200 tokens/s\n  saw: median 1200\n" in text
    assert "try: \n" not in text


def write_metrics(path, records, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


def test_load_run_skips_truncated_last_line(tmp_path):
    recs = healthy_run()
    (tmp_path / "config.json").write_text(json.dumps(HEALTHY_CONFIG))
    write_metrics(tmp_path / "metrics.jsonl", recs, tail='{"kind": "step", "step": 31, "lo')
    config, loaded = load_run(tmp_path)
    assert config == HEALTHY_CONFIG and loaded == recs


def test_load_run_errors_on_corrupt_middle_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps(r) for r in step_lines([5.0] * 4)]
    lines[2] = lines[2][:20]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ArcEfeError, match=r"metrics\.jsonl: line 3 "):
        load_run(tmp_path)


def test_load_run_missing_files(tmp_path):
    with pytest.raises(ArcEfeError, match="metrics.jsonl"):
        load_run(tmp_path)
    write_metrics(tmp_path / "metrics.jsonl", [])
    assert load_run(tmp_path) == ({}, [])


def test_load_run_reads_nan_values(tmp_path):
    recs = step_lines([5.0, float("nan")])
    write_metrics(tmp_path / "metrics.jsonl", recs)
    _, loaded = load_run(tmp_path)
    assert math.isnan(loaded[1]["loss"])
    assert any("NaN" in f.title for f in diagnose({}, loaded))


def test_write_diagnosis(tmp_path):
    text = write_diagnosis(tmp_path, HEALTHY_CONFIG, healthy_run())
    assert (tmp_path / "diagnosis.txt").read_text() == text
    assert "No problems found." in text


def test_nan_written_by_the_training_log_is_found(tmp_path):
    """MetricsLog writes NaN/inf as the strings "nan"/"inf" (JSON has no literal for them)."""
    from arc_efe.training.metrics import MetricsLog

    log = MetricsLog(tmp_path, tensorboard=False)
    losses = [5.0 - 0.1 * i for i in range(12)]
    losses[4] = float("nan")
    for rec in step_lines(losses):
        log.log(rec)
    assert '"loss": "nan"' in (tmp_path / "metrics.jsonl").read_text()
    nan = [f for f in diagnose(HEALTHY_CONFIG, load_run(tmp_path)[1]) if "NaN" in f.title]
    assert len(nan) == 1 and "1 of 12 step lines" in nan[0].saw and "step 5" in nan[0].saw


def test_trend_lists_epochs_and_each_component():
    recs = []
    for ep, (base, risk) in enumerate([(5.0, 0.9), (4.5, 0.7), (4.0, 0.5)], 1):
        recs += step_lines([base] * 4, epoch=ep, start=ep * 10)
        recs.append(epoch_line(ep, base, components=comps(0.8, risk=risk, step=0.0)))
    trend = [f for f in diagnose(HEALTHY_CONFIG, recs) if f.title.startswith("loss is falling")]
    assert len(trend) == 1
    saw = " ".join(trend[0].saw.split())
    assert "by epoch: 1: 5.00, 2: 4.50, 3: 4.00" in saw
    assert "by component (epoch 1 -> 3): risk 0.90 -> 0.50 (-44.4%)" in saw
    assert "ambiguity 0.80 -> 0.80 (+0.0%)" in saw and "step 0.00 -> 0.00" in saw


def test_memory_finding_says_whether_the_bank_grows():
    grows = [f for f in diagnose(HEALTHY_CONFIG, healthy_run()) if f.title == "memory bank is filling"]
    assert "size by epoch: 3, 12, 27 (growing)" in grows[0].saw
    recs = [epoch_line(1, 5.0, adds=0, train_acc=0.0), epoch_line(2, 4.9, adds=0, train_acc=0.0)]
    stuck = [f for f in diagnose(HEALTHY_CONFIG, recs) if "memory" in f.title]
    assert len(stuck) == 1 and "size by epoch: 0, 0 (not growing)" in stuck[0].saw

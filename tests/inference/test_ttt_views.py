"""Test-time training settings: which views vary between its sequences, and the default budget
(seconds on a CPU, steps on an accelerator)."""

import numpy as np
import pytest
import torch

from arc_efe.data.synthetic.single_rules import KINDS, single_rule_task
from arc_efe.data.views import rule_colours, rule_keeping_view
from arc_efe.inference.evaluate import CPU_TTT_SECONDS, GPU_TTT_STEPS, TTT_STEP_CAP, ttt_budget
from arc_efe.inference.ttt import TTT_VIEWS, TestTimeTrainer, TTTConfig


def test_single_rule_tasks_follow_their_rule():
    for kind in KINDS:
        task = single_rule_task(kind, seed=3)
        assert len(task.train) == 4 and len(task.test) == 1
        for p in (*task.train, *task.test):
            assert 3 <= min(p.input.shape) and max(p.input.shape) <= 5
            assert not np.array_equal(p.input, p.output)
    flip = single_rule_task("flip_lr", seed=3)
    assert all(np.array_equal(np.fliplr(p.input), p.output) for p in (*flip.train, *flip.test))
    assert single_rule_task("swap_two", 5).to_json() == single_rule_task("swap_two", 5).to_json()


def test_rule_colours_name_what_a_colour_rule_touches_and_nothing_for_a_flip():
    recolour = single_rule_task("recolour_one", seed=1)
    changed = {int(c) for p in recolour.train for c in np.unique(p.input[p.input != p.output])}
    became = {int(c) for p in recolour.train for c in np.unique(p.output[p.input != p.output])}
    assert changed | became | {0} == rule_colours(recolour.train) and len(changed | became) == 2
    assert rule_colours(single_rule_task("rotate_90", seed=1).train) == {0}
    rng = np.random.default_rng(0)
    fixed = rule_colours(recolour.train)
    for _ in range(20):
        view = rule_keeping_view(rng, 3, fixed)
        assert view.dihedral == 0 and all(view.colours[c] == c for c in fixed)
        # the recolouring rule is the same rule under the view
        for p in recolour.train:
            x, y = view.apply_grid(p.input), view.apply_grid(p.output)
            a, b = next(iter(changed)), next(iter(became))
            assert np.array_equal(np.where(x == a, b, x), y)


@pytest.mark.parametrize("views", list(TTT_VIEWS))
def test_test_time_training_draws_views_of_the_asked_kind(views):
    from arc_efe.model.policy import Policy
    from arc_efe.model.backbone import BackboneConfig, load_backbone

    torch.manual_seed(0)
    policy = Policy(load_backbone(BackboneConfig(), torch.device("cpu"), torch.float32))
    trainer = TestTimeTrainer(policy, TTTConfig(steps=1, views=views, batch=16))
    task = single_rule_task("flip_lr", seed=0)
    examples = trainer._examples(task, np.random.default_rng(0))
    queries = {tuple(e.tokens[e.answer_start:]) for e in examples}
    as_is = {tuple(e.tokens[e.answer_start:]) for e in
             TestTimeTrainer(policy, TTTConfig(steps=1, views="order", batch=16))._examples(task, np.random.default_rng(0))}
    if views in ("order", "rule"):  # a flip keeps every colour count: nothing changes but the order
        assert len(as_is) <= 4 and (queries <= as_is if views == "order" else len(queries) > 4)
    else:
        assert len(queries) > 4  # colours or orientations vary
    trainer.close()


def test_default_budget_is_seconds_on_a_cpu_and_steps_on_an_accelerator():
    assert ttt_budget(None, None, torch.device("cpu")) == (TTT_STEP_CAP, CPU_TTT_SECONDS)
    assert ttt_budget(None, None, torch.device("cuda", 0)) == (GPU_TTT_STEPS, None)
    assert ttt_budget(8, None, torch.device("cpu")) == (8, None)
    assert ttt_budget(None, 5.0, torch.device("cuda", 0)) == (TTT_STEP_CAP, 5.0)
    assert ttt_budget(0, None, torch.device("cpu")) == (0, None)  # off stays off


def test_rule_answer_views_keep_the_orientation_and_the_colours_the_rule_acts_on():
    from arc_efe.inference.pipeline import task_views

    task = single_rule_task("recolour_one", seed=1)
    fixed = rule_colours(task.train)
    views = task_views(task, 8, kind="rule")
    assert views[0].is_identity and len(views) == 8
    assert all(v.dihedral == 0 and all(v.colours[c] == c for c in fixed) for v in views)
    assert len({v.colours for v in views}) > 1  # the other colours do move
    assert len({v.dihedral for v in task_views(task, 8)}) == 8


def test_auto_views_are_rule_for_an_untrained_backbone_and_all_for_a_trained_model():
    from types import SimpleNamespace

    from arc_efe.inference.evaluate import AUTO, view_kinds

    auto = SimpleNamespace(ttt_views=AUTO, answer_views=AUTO)
    assert view_kinds(auto, fresh=True) == ("rule", "rule")
    assert view_kinds(auto, fresh=False) == ("all", "all")
    given = SimpleNamespace(ttt_views="geometry", answer_views="all")
    assert view_kinds(given, fresh=True) == ("geometry", "all")


@pytest.mark.parametrize("kind,seed", [("flip_lr", 1), ("recolour_one", 1)])
def test_a_fresh_backbone_learns_a_flip_and_a_recolouring_by_test_time_training(kind, seed):
    """evaluate's choices for an untrained backbone (its default positions, rule views in
    training and answering, the demonstrations' size), with a small fixed budget of steps:
    the test answer is right. Without test-time training the same backbone is wrong."""
    from arc_efe.model.policy import Policy
    from arc_efe.model.backbone import BackboneConfig, load_backbone
    from arc_efe.data.tasks import grids_equal
    from arc_efe.model.positions import DEFAULT_POSITIONS
    from arc_efe.inference.pipeline import InferenceConfig, solve_task

    task = single_rule_task(kind, seed)
    torch.manual_seed(0)
    policy = Policy(load_backbone(BackboneConfig(positions=DEFAULT_POSITIONS), torch.device("cpu"), torch.float32))
    inf = InferenceConfig(views=4, view_kind="rule", max_len=1024, max_side=6)
    untrained = solve_task(policy, task, inf)
    assert not any(grids_equal(a, task.test[0].output) for a in untrained.outputs[0].attempts)
    trainer = TestTimeTrainer(policy, TTTConfig(steps=100, views="rule", max_len=1024))
    result = solve_task(policy, task, inf, trainer)
    assert result.ttt.steps == 100 and result.ttt.last_loss < 0.05
    assert any(grids_equal(a, task.test[0].output) for a in result.outputs[0].attempts)

"""Why are flips, rotations and transposes failed? One figure per hypothesis, per task.

    python benchmarks/geometry.py                                     # the shipped model, evaluate's defaults
    python benchmarks/geometry.py -- --ttt-views rule --answer-views rule
    python benchmarks/geometry.py --checkpoint fresh -- --positions 2d-mirror
    python benchmarks/geometry.py --data arc-agi-1/dev --tasks 50     # the same sorting of real tasks' failures

The six geometric kinds of `arc_efe.data.synthetic.single_rules` (flip left-right / up-down,
transpose, rotate 90 / 180 / 270; grids 3x3 to 5x5, four demonstrations, one test input) for
each of `--seeds` (or, with `--data`, every test output of `--tasks` tasks of that source drawn
as `benchmarks/full_eval.py` draws them), answered as `arc-efe evaluate` answers them (its flags after `--`: the same
test-time training, views, decoding and scoring). After test-time training, inside the same
adapted weights, each task (each test output) prints:

- `solved`: the right answer is attempt 1 or 2 (official pass@2);
- `found`: the right answer is among the decoded candidates, and its rank there (decoding
  found it, selection did or did not keep it);
- `right - top`: the right answer's score minus the top candidate's (scores as `evaluate`
  ranks them: mean log-likelihood over the views plus the vote term; the right answer gets
  the votes it had). Above 0 with `found` = no: the search missed an answer the model prefers;
- `views right`: of the views, how many give the right answer greedily (mapped back), and
  whether the task as it is (view 0) does: the frame in which the model reads the rule;
- `tok acc`: of the right answer's tokens, the share the model predicts (argmax, teacher
  forced) in the task as it is: how close the model is to the rule when it misses.

The totals line is what the hypotheses are judged on: model (positions, pretraining) when the
right answer is neither found nor preferred; decoding when it is preferred but not found;
selection when it is found but not attempted; views when view 0 is right but the vote is not.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch

from arc_efe.cli import build_parser
from arc_efe.data.synthetic.single_rules import single_rule_tasks
from arc_efe.data.tasks import answer_shape, grids_equal
from arc_efe.data.tokens import answer_tokens
from arc_efe.data.sequences import view_pairs, view_prompt
from arc_efe.inference.decoding import prompt_logliks
from arc_efe.inference.evaluate import FRESH, configs_from_args, load_policy
from arc_efe.inference.pipeline import solve_output, task_views
from arc_efe.inference.selection import Candidate
from arc_efe.inference.ttt import TestTimeTrainer
from arc_efe.saved.modelfolder import shipped_model

from common import split_passthrough
from full_eval import chosen_tasks

GEOMETRY = ("flip_lr", "flip_ud", "transpose", "rotate_90", "rotate_180", "rotate_270")


def token_accuracy(policy, prompt: list[int], answer) -> float:
    """Share of the answer's tokens that are the model's argmax, teacher forced."""
    target = answer_tokens(answer)
    ids = torch.tensor([list(prompt) + target], device=next(policy.backbone.parameters()).device)
    with torch.no_grad():
        logits = policy.backbone(inputs_embeds=policy._embed(ids, None)).logits[0]
    pred = logits[len(prompt) - 1: len(prompt) - 1 + len(target)].argmax(-1).tolist()
    return sum(p == t for p, t in zip(pred, target)) / len(target)


def study(policy, task, inf, trainer) -> list[dict]:
    """The figures of the module docstring for each test output of `task`."""
    policy.eval()
    with trainer.adapted(task) if trainer is not None else contextlib.nullcontext():
        with torch.no_grad():
            return [study_output(policy, task, i, inf) for i in range(len(task.test))]


def study_output(policy, task, test_index: int, inf) -> dict:
    views = task_views(task, inf.views, inf.seed, inf.view_kind)
    query = task.test[test_index]
    answer = query.output
    out = solve_output(policy, task, test_index, views, inf)
    cands = out.candidates
    found = next((i for i, c in enumerate(cands) if grids_equal(c.grid, answer)), None)
    right = cands[found] if found is not None else Candidate(answer, votes=0)
    fitting = [(v, e.prompt) for v in views for e in [view_prompt(task.train, query.input, v, inf.max_len)[0]]
               if e is not None]
    if found is None:  # score it as evaluate scores its candidates
        for v, prompt in fitting:
            lik = prompt_logliks(policy, prompt, [v.apply_grid(answer)])[0]
            right.logliks.append(lik.logprob)
            right.entropies.append(lik.entropy)
    per_view = []
    for v, prompt in fitting:
        shape = answer_shape(view_pairs(task.train, v), v.apply_grid(query.input)) if inf.shape_rule else None
        grid = policy.greedy([prompt], None, inf.max_side, [shape])[0]
        per_view.append(grid is not None and grids_equal(v.invert_grid(grid), answer))
    acc = token_accuracy(policy, fitting[0][1], answer) if fitting else float("nan")
    solved = any(grids_equal(a, answer) for a in out.attempts)
    gap = right.score(inf.vote_weight) - cands[0].score(inf.vote_weight) if right.logliks else float("nan")
    return {"solved": solved, "found": found, "gap": gap, "views_right": sum(per_view),
            "view0": bool(per_view) and per_view[0], "n_views": len(views), "tok_acc": acc}


def main() -> None:
    argv, passed = split_passthrough(sys.argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds; one task per kind and seed")
    p.add_argument("--data", default=None, help="real tasks instead (a source such as arc-agi-1/dev)")
    p.add_argument("--tasks", type=int, default=50, help="with --data: this many drawn at random")
    p.add_argument("--sample-seed", type=int, default=0, help="with --data: the seed of that draw")
    p.add_argument("--checkpoint", default=None, help="evaluate's --checkpoint (default: the shipped model)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    checkpoint = ["--checkpoint", args.checkpoint] if args.checkpoint else []
    ev = build_parser().parse_args(["evaluate", "--data", args.data or "single-rules", *checkpoint,
                                    "--device", "cpu", *passed])
    fresh = ev.checkpoint == FRESH
    path = None if fresh else (Path(ev.checkpoint) if ev.checkpoint else shipped_model())
    torch.manual_seed(ev.seed)
    policy, *_ = load_policy(path, ev.model_name or "tiny", torch.device("cpu"), ev.positions)
    inf, ttt = configs_from_args(ev, ev.max_context, torch.device("cpu"), fresh=fresh)
    trainer = TestTimeTrainer(policy, ttt) if ttt.enabled else None
    print(f"model: {path or f'untrained tiny ({ev.positions})'}; answer views {inf.view_kind}, test-time views "
          f"{ttt.views}, {ttt.seconds or '-'} s / {ttt.steps} steps; flags: {' '.join(passed) or '(defaults)'}",
          flush=True)
    tasks = (chosen_tasks(args.data, args.tasks, args.sample_seed) if args.data else
             [t for s in args.seeds.split(",") for t in single_rule_tasks(int(s), kinds=list(GEOMETRY))])
    print(f"{'task':<18} {'solved':>6} {'found':>6} {'right-top':>9} {'views right':>11} {'view 0':>6} "
          f"{'tok acc':>7}", flush=True)
    rows = []
    for task in tasks:
        for i, r in enumerate(study(policy, task, inf, trainer)):
            rows.append(r)
            found = "-" if r["found"] is None else f"#{r['found'] + 1}"
            name = task.id if len(task.test) == 1 else f"{task.id}#{i + 1}"
            print(f"{name:<18} {'yes' if r['solved'] else 'no':>6} {found:>6} {r['gap']:9.2f} "
                  f"{r['views_right']:>5}/{r['n_views']:<5} {'yes' if r['view0'] else 'no':>6} {r['tok_acc']:7.3f}",
                  flush=True)
    n = len(rows)
    unsolved = [r for r in rows if not r["solved"]]
    print(f"\nsolved {sum(r['solved'] for r in rows)}/{n}; of the {len(unsolved)} unsolved: "
          f"not found and not preferred (model) {sum(r['found'] is None and not r['gap'] > 0 for r in unsolved)}, "
          f"preferred but not found (decoding) {sum(r['found'] is None and r['gap'] > 0 for r in unsolved)}, "
          f"found but not attempted (selection) {sum(r['found'] is not None for r in unsolved)}, "
          f"view 0 right (views) {sum(r['view0'] for r in unsolved)}; "
          f"mean views right {sum(r['views_right'] for r in rows) / n:.1f}/{rows[0]['n_views']}, "
          f"mean token accuracy {sum(r['tok_acc'] for r in rows) / n:.3f}")


if __name__ == "__main__":
    main()

"""Inference: depth-first decoding, views mapped back, selection, test-time training."""

import json
import re
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from arc_efe.cli import main
from arc_efe.data.sources import load_tasks
from arc_efe.data.tasks import Pair, Task
from arc_efe.data.tokens import END, IN, OUT, VOCAB_SIZE, encode_task
from arc_efe.inference.decoding import answer_logliks, dfs_candidates, prompt_logliks
from arc_efe.inference.pipeline import InferenceConfig, solve_output, solve_task, task_views
from arc_efe.inference.selection import Candidate, choose_two, rank
from arc_efe.inference.ttt import TestTimeTrainer, TTTConfig
from arc_efe.model.policy import CACHE_KEY, Policy
from arc_efe.model.backbone import BackboneConfig, load_backbone


# --- a model that implements a symmetric rule exactly ----------------------------------
class _Cache:
    """Stands in for a key/value cache: the token ids seen so far."""

    def __init__(self):
        self.ids: list[int] = []

    def get_seq_length(self) -> int:
        return len(self.ids)

    def crop(self, remove: int) -> None:
        assert remove <= 0
        if remove:
            del self.ids[remove:]


class CopyModel(nn.Module):
    """Answers with a copy of the query input (a rule every view preserves), with the
    probability of the right token set by `sharpness`; ids are read back from one-hot
    embeddings."""

    def __init__(self, sharpness: float = 8.0):
        super().__init__()
        self.embed = nn.Embedding(VOCAB_SIZE, VOCAB_SIZE)
        with torch.no_grad():
            self.embed.weight.copy_(torch.eye(VOCAB_SIZE))
        self.sharpness = sharpness

    def get_input_embeddings(self):
        return self.embed

    def _next(self, prefix: list[int]) -> torch.Tensor:
        logits = torch.zeros(VOCAB_SIZE)
        if OUT not in prefix:
            return logits
        o = len(prefix) - 1 - prefix[::-1].index(OUT)
        i = len(prefix[:o]) - 1 - prefix[:o][::-1].index(IN)
        query, answer = prefix[i + 1:o], prefix[o + 1:]
        logits[query[len(answer)] if len(answer) < len(query) else END] = self.sharpness
        return logits

    def forward(self, inputs_embeds, attention_mask=None, position_ids=None, use_cache=False,
                output_hidden_states=False, **kw):
        ids = inputs_embeds.argmax(-1).tolist()
        cache = kw.get(CACHE_KEY) or _Cache()
        rows = []
        for b, seq in enumerate(ids):
            if attention_mask is not None and not use_cache:
                seq = [t for t, m in zip(seq, attention_mask[b].tolist()) if m]
            base = cache.ids if use_cache else []
            rows.append(torch.stack([self._next(base + seq[:t + 1]) for t in range(len(seq))]))
        if use_cache:
            cache.ids += ids[0]
        length = max(r.shape[0] for r in rows)
        logits = torch.stack([torch.cat([r, r.new_zeros(length - r.shape[0], VOCAB_SIZE)]) for r in rows])
        return SimpleNamespace(logits=logits, **{CACHE_KEY: cache})


def _copy_task(seed: int = 0, n_train: int = 3, query_shape=(3, 4)) -> Task:
    rng = np.random.default_rng(seed)

    def grid(h, w):
        return rng.integers(0, 10, size=(h, w)).astype(np.uint8)

    train = []
    for _ in range(n_train):
        g = grid(int(rng.integers(2, 5)), int(rng.integers(2, 5)))
        train.append(Pair(g, g.copy()))
    q = grid(*query_shape)
    return Task(f"copy{seed}", tuple(train), (Pair(q, q.copy()),))


def test_every_view_maps_back_to_the_identity_answer_for_a_symmetric_rule():
    policy = Policy(CopyModel()).eval()
    task = _copy_task()
    views = task_views(task, 8)
    assert views[0].is_identity and len({v.dihedral for v in views}) == 8
    cfg = InferenceConfig(views=8, min_prob=0.3)
    identity = solve_output(policy, task, 0, views[:1], cfg).candidates[0].grid
    assert np.array_equal(identity, task.test[0].input)
    for view in views[1:]:
        out = solve_output(policy, task, 0, [view], cfg)
        assert out.candidates and np.array_equal(out.candidates[0].grid, identity), view
    voted = solve_output(policy, task, 0, views, cfg)
    assert voted.candidates[0].votes == 8 and len(voted.candidates[0].logliks) == 8


def test_dfs_keeps_every_answer_above_min_prob_and_agrees_with_teacher_forcing():
    policy = Policy(CopyModel(sharpness=3.0)).eval()
    task = _copy_task(1, query_shape=(2, 2))
    prompt = encode_task(task.train, task.test[0].input).prompt
    p_token = math.exp(3.0) / (math.exp(3.0) + VOCAB_SIZE - 1)
    found = dfs_candidates(policy, prompt, min_prob=1e-4, max_candidates=200)
    assert all(d.logprob >= math.log(1e-4) for d in found)
    assert [d.logprob for d in found] == sorted((d.logprob for d in found), reverse=True)
    copies = [d for d in found if np.array_equal(d.grid, task.test[0].input)]
    assert len(copies) == 1 and copies[0].logprob == pytest.approx(7 * math.log(p_token), abs=1e-4)
    # one cell changed (6 right tokens, 1 of 15 wrong ones) clears 1e-4: all 4 x 9 of them
    one_off = [d for d in found if d.grid.shape == (2, 2) and (d.grid != task.test[0].input).sum() == 1]
    assert len(one_off) == 36
    liks = answer_logliks(policy, [prompt] * len(found), [d.grid for d in found])
    for d, lik in zip(found, liks):
        assert lik.logprob == pytest.approx(d.logprob, abs=1e-4)
    # a threshold above the greedy answer's probability finds nothing; the caller falls back
    assert dfs_candidates(policy, prompt, min_prob=0.99) == []
    assert len(dfs_candidates(policy, prompt, min_prob=1e-4, max_candidates=3)) == 3


def test_dfs_on_a_real_backbone_reuses_the_cache_correctly():
    torch.manual_seed(0)
    policy = Policy(load_backbone(BackboneConfig(), torch.device("cpu"), torch.float32)).eval()
    task = _copy_task(2)
    prompt = encode_task(task.train, task.test[0].input).prompt
    found = dfs_candidates(policy, prompt, min_prob=1e-30, max_candidates=4, max_side=2)
    assert len(found) == 4 and len({d.grid.tobytes() + bytes(d.grid.shape) for d in found}) == 4
    liks = answer_logliks(policy, [prompt] * 4, [d.grid for d in found])
    for d, lik in zip(found, liks):
        assert lik.logprob == pytest.approx(d.logprob, abs=1e-3)
    # the search follows the greedy path first (completions met on the way are kept too)
    greedy = policy.greedy([prompt], max_side=2)[0]
    wider = dfs_candidates(policy, prompt, min_prob=1e-30, max_candidates=16, max_side=2)
    assert any(np.array_equal(d.grid, greedy) for d in wider)
    assert max(d.logprob for d in wider) == wider[0].logprob


@pytest.mark.parametrize("positions", ["1d", "2d-match"])
def test_scoring_with_the_shared_prompt_cache_equals_teacher_forcing(positions):
    torch.manual_seed(0)
    policy = Policy(load_backbone(BackboneConfig(positions=positions), torch.device("cpu"), torch.float32)).eval()
    task = _copy_task(3, query_shape=(3, 3))
    prompt = encode_task(task.train, task.test[0].input).prompt
    rng = np.random.default_rng(0)
    answers = [rng.integers(0, 10, size=s).astype(np.uint8) for s in [(3, 3), (1, 1), (4, 2), (3, 3)]]
    shared = prompt_logliks(policy, prompt, answers)
    forced = answer_logliks(policy, [prompt] * len(answers), answers)
    assert len({round(x.logprob, 3) for x in shared}) == len(answers)  # different answers, different scores
    for a, b in zip(shared, forced):
        assert a.tokens == b.tokens
        assert a.logprob == pytest.approx(b.logprob, abs=1e-3)
        assert a.entropy == pytest.approx(b.entropy, abs=1e-4)
    assert prompt_logliks(policy, prompt, []) == []


def _cand(value, votes, logliks):
    return Candidate(np.full((1, 1), value, dtype=np.uint8), votes, list(logliks), [0.1] * len(logliks), 3)


def test_selection_product_of_experts_votes_and_deterministic_ties():
    a = _cand(1, 1, [-1.0, -1.0])  # poe -1.0
    b = _cand(2, 3, [-1.5, -1.7])  # poe -1.6, + ln 3 = -0.50
    c = _cand(3, 1, [-0.2, -3.0])  # poe -1.6
    assert [x.grid[0, 0] for x in choose_two([a, b, c])] == [2, 1]
    assert [x.grid[0, 0] for x in choose_two([a, b, c], vote_weight=0.0)] == [1, 2]  # b beats c on votes
    # exact ties: order found does not matter; smaller grid key first
    d, e = _cand(7, 2, [-1.0]), _cand(4, 2, [-1.0])
    assert [x.grid[0, 0] for x in rank([d, e])] == [4, 7] == [x.grid[0, 0] for x in rank([e, d])]
    assert len(choose_two([a])) == 1
    assert a.risk == pytest.approx(1.0 / 3 / math.log(VOCAB_SIZE))
    assert a.efe == pytest.approx(a.risk + 0.1 / math.log(VOCAB_SIZE))


def _recolour_task(seed: int = 0, n: int = 5) -> tuple[Task, list[Pair]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        g = rng.integers(0, 3, size=(3, 3)).astype(np.uint8)
        o = g.copy()
        o[g == 1] = 2
        pairs.append(Pair(g, o))
    return Task("recolour", tuple(pairs[:-1]), (Pair(pairs[-1].input, None),)), pairs


def _tiny_policy():
    torch.manual_seed(0)
    return Policy(load_backbone(BackboneConfig(), torch.device("cpu"), torch.float32)).eval()


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_ttt_lowers_held_out_loss_and_leaves_base_weights_bit_identical(mode):
    policy = _tiny_policy()
    before = {n: p.detach().clone() for n, p in policy.backbone.named_parameters()}
    task, pairs = _recolour_task()
    held = pairs[-1]
    prompt = encode_task(pairs[:-1], held.input).prompt
    start = answer_logliks(policy, [prompt], [held.output])[0].logprob
    trainer = TestTimeTrainer(policy, TTTConfig(steps=40, lr=3e-3 if mode == "full" else 1e-2, mode=mode))
    with trainer.adapted(task) as stats:
        during = answer_logliks(policy, [prompt], [held.output])[0].logprob
        if mode == "lora":
            names = [n for n, p in policy.backbone.named_parameters() if p.requires_grad]
            assert names and all(".ttt." in n for n in names)
    trainer.close()
    assert stats.steps == 40 and stats.last_loss < stats.first_loss
    assert during > start + 1.0, (start, during)  # the held-out demonstration got more likely
    after = dict(policy.backbone.named_parameters())
    assert set(after) == set(before)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert answer_logliks(policy, [prompt], [held.output])[0].logprob == pytest.approx(start, abs=1e-5)


def test_ttt_on_a_lora_checkpoint_keeps_its_adapter_and_base(tmp_path):
    torch.manual_seed(0)
    policy = Policy(load_backbone(BackboneConfig(mode="lora", lora_rank=4), torch.device("cpu"), torch.float32))
    before = {n: p.detach().clone() for n, p in policy.backbone.named_parameters()}
    task, _ = _recolour_task(1)
    trainer = TestTimeTrainer(policy, TTTConfig(steps=3, mode="lora", rank=4))
    result = solve_task(policy, task, InferenceConfig(views=2, decoder="greedy", max_side=4), trainer)
    trainer.close()
    assert result.ttt.steps == 3 and len(result.outputs[0].attempts) >= 1
    after = dict(policy.backbone.named_parameters())
    assert set(after) == set(before) and all(torch.equal(before[n], after[n]) for n in before)


def test_ttt_time_budget_and_single_demo_task():
    policy = _tiny_policy()
    task, _ = _recolour_task()
    trainer = TestTimeTrainer(policy, TTTConfig(steps=10_000, seconds=0.5))
    with trainer.adapted(task) as stats:
        pass
    assert 0 < stats.steps < 10_000
    one = Task("one", task.train[:1], task.test)
    with trainer.adapted(one) as stats:
        pass
    assert stats.steps == 0


def test_evaluate_with_ttt_writes_a_submission_the_scorer_accepts(tmp_path, capsys):
    tasks = load_tasks("arc-agi-1/evaluation").tasks
    small = sorted(tasks, key=lambda t: sum(p.input.size + (p.output.size if p.output is not None else 0)
                                           for p in (*t.train, *t.test)))[:3]
    data = tmp_path / "three.json"
    data.write_text(json.dumps({t.id: t.to_json() for t in small}))
    out = tmp_path / "ev"
    assert main(["evaluate", "--data", str(data), "--device", "cpu", "--output-dir", str(out),
                 "--ttt-steps", "2", "--views", "2", "--max-side", "6", "--no-progress"]) == 0
    text = capsys.readouterr().out
    score_line = next(l for l in text.splitlines() if l.startswith("score "))
    assert all(t.id in text for t in small)
    records = [json.loads(l) for l in (out / "eval.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in records] == [t.id for t in small]
    assert all(r["ttt"]["steps"] == 2 and r["correct"] is not None for r in records)
    assert main(["score", str(out / "submission.json"), "--data", str(data), "--quiet"]) == 0
    assert next(l for l in capsys.readouterr().out.splitlines() if l.startswith("score ")) == score_line


def test_shards_merge_to_the_full_submission(tmp_path, capsys):
    args = ["--data", "synthetic", "--seed", "5", "--max-tasks", "3", "--device", "cpu", "--views", "1",
            "--decoder", "greedy", "--max-side", "4", "--no-progress", "--ttt-steps", "0"]
    assert main(["evaluate", *args, "--output-dir", str(tmp_path / "all")]) == 0
    for i in (1, 2):
        assert main(["evaluate", *args, "--shard", f"{i}/2", "--output-dir", str(tmp_path / f"s{i}")]) == 0
    s1 = json.loads((tmp_path / "s1" / "submission.json").read_text())
    s2 = json.loads((tmp_path / "s2" / "submission.json").read_text())
    assert len(s1) == 2 and len(s2) == 1 and not set(s1) & set(s2)
    merged = tmp_path / "merged.json"
    assert main(["merge", str(merged), str(tmp_path / "s1"), str(tmp_path / "s2" / "submission.json")]) == 0
    assert json.loads(merged.read_text()) == json.loads((tmp_path / "all" / "submission.json").read_text())
    # a task answered differently by two shards is refused, naming both files
    bad = tmp_path / "bad.json"
    some = next(iter(s1))
    bad.write_text(json.dumps({some: [{"attempt_1": [[9]], "attempt_2": [[9]]}]}))
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "m2.json"), str(tmp_path / "s1"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and some in err
    assert main(["evaluate", *args, "--shard", "3/2"]) == 2


def test_solve_prints_two_attempts(tmp_path, capsys):
    task = _copy_task(3)
    path = tmp_path / "task.json"
    body = task.to_json()
    for p in body["test"]:
        p.pop("output", None)
    path.write_text(json.dumps(body))
    assert main(["solve", str(path), "--device", "cpu", "--views", "2", "--decoder", "greedy",
                 "--max-side", "4", "--no-color", "--ttt-steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "attempt_1" in out and "test[0]" in out
    # a second attempt is shown when there is a second candidate
    assert ("attempt_2" in out) == (int(re.search(r"(\d+) candidates", out).group(1)) >= 2)


# --- the answer's size when the demonstrations agree on it ------------------------------
def _pairs(*shapes):
    return [Pair(np.zeros(i, np.uint8), np.zeros(o, np.uint8)) for i, o in shapes]


def test_answer_shape_follows_the_size_rule_every_demonstration_shows():
    from arc_efe.data.tasks import answer_shape

    test_input = np.zeros((3, 4), np.uint8)
    assert answer_shape(_pairs(((2, 5), (2, 5)), ((4, 4), (4, 4))), test_input) == (3, 4)
    assert answer_shape(_pairs(((2, 5), (5, 2)), ((3, 1), (1, 3))), test_input) == (4, 3)
    assert answer_shape(_pairs(((2, 5), (1, 1)), ((6, 6), (1, 1))), test_input) == (1, 1)
    # one demonstration that breaks the rule: no size is imposed
    assert answer_shape(_pairs(((2, 5), (2, 5)), ((4, 4), (2, 2))), test_input) is None
    assert answer_shape([Pair(np.zeros((2, 2), np.uint8), None)], test_input) is None


def test_a_shaped_constraint_only_lets_grids_of_that_shape_out():
    from arc_efe.model.policy import GridConstraint
    from arc_efe.data.tokens import try_decode_grid

    rng = np.random.default_rng(0)
    for shape in [(1, 1), (3, 4), (5, 2)]:
        for _ in range(50):
            c, toks = GridConstraint(shape=shape), []
            while not c.done:
                t = int(rng.choice(c.allowed()))
                toks.append(t)
                c.step(t)
            assert try_decode_grid(toks).shape == shape
    assert GridConstraint(max_side=4, shape=(5, 5)).shape is None  # larger than allowed: free


def test_decoders_keep_to_the_demonstrations_size_unless_told_not_to():
    """A copy model would copy a 2x2 test input; demonstrations whose outputs are all 1x3
    make every decoded answer 1x3, and --no-shape-rule lets the copy through."""
    policy = Policy(CopyModel(sharpness=3.0)).eval()
    rng = np.random.default_rng(0)
    train = tuple(Pair(rng.integers(0, 10, (2, 2)).astype(np.uint8), rng.integers(0, 10, (1, 3)).astype(np.uint8))
                  for _ in range(3))
    q = rng.integers(0, 10, (2, 2)).astype(np.uint8)
    task = Task("fixed-size", train, (Pair(q, np.zeros((1, 3), np.uint8)),))
    for decoder in ("dfs", "greedy"):
        shaped = solve_output(policy, task, 0, task_views(task, 1), InferenceConfig(views=1, decoder=decoder))
        free = solve_output(policy, task, 0, task_views(task, 1),
                            InferenceConfig(views=1, decoder=decoder, shape_rule=False))
        assert shaped.candidates and all(c.grid.shape == (1, 3) for c in shaped.candidates), decoder
        assert np.array_equal(free.candidates[0].grid, q), decoder
    # training's and the benchmarks' greedy answers (decode_queries) keep to it as well
    from arc_efe.data.dataset import make_queries
    from arc_efe.data.views import View
    from arc_efe.model.policy import decode_queries

    query = make_queries([task], "test")
    assert decode_queries(policy, query, View(), 512)[0].shape == (1, 3)
    assert np.array_equal(decode_queries(policy, query, View(), 512, shape_rule=False)[0], q)

"""Grid positions: every token's role, demonstration number, row and column, in every layout
the model sees (one sequence, padded and packed batches, token-by-token decoding), and a
pretrained model that gives exactly the same logits with zero-initialised position tables."""

import numpy as np
import pytest
import torch
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM

from arc_efe.data.packing import pack
from arc_efe.model.positions import (MATCH_NO, MATCH_NONE, MATCH_YES, NO_COLOUR, NO_PLACE, PAIRED, ROLE_ANSWER,
                                    ROLE_DEMO_IN, ROLE_DEMO_OUT, ROLE_DRAFT, ROLE_NONE, ROLE_TEST_IN, embed,
                                    GridPositions, grid_places, newest_places)
from arc_efe.data.sequences import Example, collate
from arc_efe.data.tasks import Pair
from arc_efe.data.tokens import BOS, END, IN, OUT, PAD, ROW, answer_tokens, encode_task
from arc_efe.inference.decoding import answer_logliks, dfs_candidates
from arc_efe.model.policy import Policy
from arc_efe.model.backbone import BackboneConfig, load_backbone

from tiny_tokenizer import make_tokenizer

CPU = torch.device("cpu")


def grid(h, w, seed):
    return np.random.default_rng(seed).integers(0, 10, size=(h, w)).astype(np.uint8)


def expected_places(layout):
    """Places written out by hand from a list of (role, pair, grid, marker, end, mirrored):
    the marker token opens the grid, its cells follow row by row with ROW after each row.
    Channels: role, pair, row, col, next row, next col, mirrored row, mirrored col."""
    none = NO_PLACE
    out = [(BOS, (ROLE_NONE, 0, none, none, none, none, none, none))]
    for role, pair, g, marker, end, mirrored in layout:
        h, w = g.shape
        out.append((marker, (role, pair, none, none, 0, 0, none, none)))
        for r in range(h):
            for c in range(w):
                mr, mc = (h - 1 - r, w - 1 - c) if mirrored else (none, none)
                out.append((int(g[r, c]), (role, pair, r, c, r, c + 1, mr, mc)))
            out.append((ROW, (role, pair, r, w, r + 1, 0, none, none)))
        if end:
            out.append((END, (role, pair, h, 0, none, none, none, none)))
    return [t for t, _ in out], [p for _, p in out]


SHAPES = [(1, 1), (1, 30), (30, 1), (30, 30), (2, 3)]


def ragged_task():
    demos = [Pair(grid(1, 1, 0), grid(1, 30, 1)), Pair(grid(30, 1, 2), grid(30, 30, 3))]
    return demos, grid(2, 3, 4), grid(3, 2, 5)


def test_places_of_a_ragged_task_match_the_layout():
    demos, q_in, q_out = ragged_task()
    enc = encode_task(demos, q_in, q_out)
    layout = []
    for k, p in enumerate(demos, 1):
        layout += [(ROLE_DEMO_IN, k, p.input, IN, False, True), (ROLE_DEMO_OUT, k, p.output, OUT, True, True)]
    layout += [(ROLE_TEST_IN, 0, q_in, IN, False, True), (ROLE_ANSWER, 0, q_out, OUT, True, False)]
    tokens, want = expected_places(layout)
    assert enc.tokens == tokens
    assert grid_places(torch.tensor(enc.tokens)).tolist() == [list(p) for p in want]


def test_a_draft_and_its_revision_have_their_own_roles():
    demos, q_in, q_out = ragged_task()
    draft = grid(3, 2, 9)
    enc = encode_task(demos, q_in, None)
    tokens = enc.prompt + answer_tokens(draft)[:-1] + [OUT] + answer_tokens(q_out)
    layout = []
    for k, p in enumerate(demos, 1):
        layout += [(ROLE_DEMO_IN, k, p.input, IN, False, True), (ROLE_DEMO_OUT, k, p.output, OUT, True, True)]
    layout += [(ROLE_TEST_IN, 0, q_in, IN, False, True), (ROLE_DRAFT, 0, draft, OUT, False, True),
               (ROLE_ANSWER, 0, q_out, OUT, True, False)]
    want_tokens, want = expected_places(layout)
    assert tokens == want_tokens
    assert grid_places(torch.tensor(tokens)).tolist() == [list(p) for p in want]


def examples_of_ragged_sizes():
    out = []
    for i, (h, w) in enumerate(SHAPES):
        demos = [Pair(grid(h, w, 10 * i + k), grid(w, h, 10 * i + k + 5)) for k in range(2)]
        enc = encode_task(demos, grid(h, w, 10 * i + 7), grid(w, h, 10 * i + 8))
        out.append(Example(enc.tokens, len(enc.prompt), len(enc.answer)))
    return out


def test_padded_and_packed_batches_give_each_sequence_its_own_places():
    examples = examples_of_ragged_sizes()
    alone = [grid_places(torch.tensor(e.tokens)) for e in examples]
    padded = collate(examples)
    places = grid_places(padded.input_ids)
    for i, e in enumerate(examples):
        n = len(e.tokens)
        assert torch.equal(places[i, :n], alone[i])
        assert (places[i, n:, 0] == ROLE_NONE).all() and (places[i, n:, 2:] == NO_PLACE).all()
    packed = pack(examples, max_tokens=4000)
    assert packed.input_ids.shape[0] < len(examples)  # several sequences share a row
    places = grid_places(packed.input_ids)
    for i, e in enumerate(examples):
        r, start = packed.place(i, 0)
        assert torch.equal(places[r, start:start + len(e.tokens)], alone[i])


def test_places_while_decoding_equal_those_of_the_whole_sequence():
    """Token by token, the place of the newest token (from the tokens so far, as a decoder
    sees them, left padding included) is its place in the finished sequence."""
    for e in examples_of_ragged_sizes():
        whole = grid_places(torch.tensor(e.tokens))
        for t in range(e.answer_start, len(e.tokens)):
            so_far = torch.tensor([[PAD] * 3 + e.tokens[: t + 1]])
            assert torch.equal(grid_places(so_far)[0, -1], whole[t]), t


# each of PAIRED's images written as the numpy transform of the whole input grid
TRANSFORMS = {"same": lambda g: g, "flip_lr": np.fliplr, "flip_ud": np.flipud,
              "rotate_180": lambda g: np.rot90(g, 2), "transpose": lambda g: g.T,
              "rotate_cw": lambda g: np.rot90(g, -1), "rotate_ccw": lambda g: np.rot90(g, 1),
              "anti_transpose": lambda g: np.rot90(g, 2).T, "tile": lambda g: np.tile(g, (2, 3))}


@pytest.mark.parametrize("name", list(PAIRED))
def test_paired_colours_predict_the_next_cell_of_an_output_made_by_that_transform(name):
    """In a task whose outputs are one transform of their inputs, the paired colour of that
    transform at every output token is the colour of the cell that comes next; tokens of
    inputs and the marker after an output's last cell have none."""
    assert set(TRANSFORMS) == set(PAIRED)
    rng = np.random.default_rng(list(PAIRED).index(name))
    shapes = [(1, 1), (1, 5), (4, 1), (3, 5), (5, 2)]
    pairs = [Pair(g, np.ascontiguousarray(TRANSFORMS[name](g)))
             for g in (rng.integers(0, 10, s).astype(np.uint8) for s in shapes)]
    tokens = encode_task(pairs[:-1], pairs[-1].input, pairs[-1].output).tokens
    places = grid_places(torch.tensor(tokens), paired=True)
    assert places.shape == (len(tokens), 8 + len(PAIRED))
    channel = places[:, 8 + list(PAIRED).index(name)].tolist()
    roles = places[:, 0].tolist()
    cells = 0
    for t in range(len(tokens) - 1):
        if roles[t] in (ROLE_DEMO_OUT, ROLE_ANSWER) and tokens[t + 1] < 10:
            assert channel[t] == tokens[t + 1], t
            cells += 1
        if roles[t] in (ROLE_NONE, ROLE_DEMO_IN, ROLE_TEST_IN) or tokens[t] == END:
            assert channel[t] == NO_COLOUR, t
    assert cells == sum(p.output.size for p in pairs)
    assert places[:, :8].tolist() == grid_places(torch.tensor(tokens)).tolist()


@pytest.mark.parametrize("name", list(PAIRED))
def test_matches_flag_every_output_cell_that_has_its_paired_colour(name):
    """`2d-match`: in a task whose outputs are one transform of their inputs, every output
    cell says yes for that transform; another transform that moves cells says no somewhere;
    tokens that are no output cell say nothing."""
    rng = np.random.default_rng(10 + list(PAIRED).index(name))
    shapes = [(3, 3), (2, 4), (4, 2), (3, 5)]
    pairs = [Pair(g, np.ascontiguousarray(TRANSFORMS[name](g)))
             for g in (rng.integers(0, 10, s).astype(np.uint8) for s in shapes)]
    tokens = encode_task(pairs[:-1], pairs[-1].input, pairs[-1].output).tokens
    places = grid_places(torch.tensor(tokens), paired=True, matches=True)
    n = len(PAIRED)
    assert places.shape == (len(tokens), 8 + 2 * n)
    assert places[:, :8 + n].tolist() == grid_places(torch.tensor(tokens), paired=True).tolist()
    k = list(PAIRED).index(name)
    flag = places[:, 8 + n + k].tolist()
    roles = places[:, 0].tolist()
    output_cells = [t for t in range(len(tokens)) if roles[t] in (ROLE_DEMO_OUT, ROLE_ANSWER) and tokens[t] < 10]
    assert len(output_cells) == sum(p.output.size for p in pairs)
    for t in range(len(tokens)):
        if t in output_cells:
            assert flag[t] == MATCH_YES, t
        else:
            assert flag[t] == MATCH_NONE, t
    others = [j for j, other in enumerate(PAIRED) if other not in (name, "same", "tile")]
    said_no = {j: any(places[t, 8 + n + j] == MATCH_NO for t in output_cells) for j in others}
    assert any(said_no.values()), said_no


def test_paired_colours_in_packed_batches_and_while_decoding():
    examples = examples_of_ragged_sizes()
    for matches in (False, True):
        alone = [grid_places(torch.tensor(e.tokens), paired=True, matches=matches) for e in examples]
        packed = pack(examples, max_tokens=4000)
        places = grid_places(packed.input_ids, paired=True, matches=matches)
        for i, e in enumerate(examples):
            r, start = packed.place(i, 0)
            assert torch.equal(places[r, start:start + len(e.tokens)], alone[i])
        for e, whole in zip(examples[:2], alone):
            for t in range(e.answer_start, len(e.tokens)):
                so_far = torch.tensor([[PAD] * 3 + e.tokens[: t + 1]])
                assert torch.equal(grid_places(so_far, paired=True, matches=matches)[0, -1], whole[t]), t


@pytest.mark.parametrize("kind", ["2d-mirror", "2d-match"])
def test_the_newest_tokens_place_from_the_tail_equals_its_place_in_the_whole_batch(kind):
    """Decoders read only BOS and the tail from the last IN: the same places as the whole
    left-padded batch, for rows whose last IN sits at different columns."""
    holder = nn.Module()
    holder.arc_positions = GridPositions(8, kind)
    examples = examples_of_ragged_sizes()[:3]
    for step in range(6):
        rows = [e.tokens[: e.answer_start + step] for e in examples]
        width = max(map(len, rows))
        ids = torch.tensor([[PAD] * (width - len(r)) + r for r in rows])
        assert torch.equal(newest_places(holder, ids), holder.arc_positions.places(ids)[:, -1:]), step


def tiny_policy(positions="2d-mirror", seed=0):
    torch.manual_seed(seed)
    return Policy(load_backbone(BackboneConfig(positions=positions), CPU, torch.float32)).eval()


@pytest.mark.parametrize("positions", ["2d", "2d-mirror", "2d-paired", "2d-match"])
def test_incremental_decoding_matches_teacher_forcing(positions):
    """The greedy and depth-first decoders (key/value cache, places from the tokens written so
    far) give the answer and likelihood that teacher forcing gives."""
    policy = tiny_policy(positions)
    with torch.no_grad():
        for t in policy.backbone.arc_positions.tables.values():
            t.weight.mul_(50)  # positions that matter: a wrong place changes the answer
    demos = [Pair(grid(2, 3, 1), grid(3, 2, 2)), Pair(grid(2, 3, 3), grid(3, 2, 4))]
    prompt = encode_task(demos, grid(2, 3, 5)).prompt
    greedy = policy.greedy([prompt], max_side=4)[0]
    found = dfs_candidates(policy, prompt, min_prob=1e-4, max_candidates=3, max_side=4)
    assert greedy is not None and found
    tf = answer_logliks(policy, [prompt] * len(found), [d.grid for d in found])
    for d, lik in zip(found, tf):
        assert d.logprob == pytest.approx(lik.logprob, abs=1e-3)
    # the places matter: without them the same weights score the best answer differently
    grid_tables = policy.backbone.arc_positions
    del policy.backbone.arc_positions
    try:
        plain = answer_logliks(policy, [prompt], [found[0].grid])[0]
    finally:
        policy.backbone.arc_positions = grid_tables
    assert abs(plain.logprob - tf[0].logprob) > 1e-2


@pytest.mark.parametrize("positions", ["2d", "2d-mirror", "2d-paired", "2d-match"])
def test_pretrained_backbone_with_zero_positions_gives_identical_logits(tmp_path, positions):
    torch.manual_seed(0)
    Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=1,
                                 intermediate_size=64)).save_pretrained(tmp_path)
    make_tokenizer().save_pretrained(tmp_path)
    plain = load_backbone(BackboneConfig(model_name=str(tmp_path), positions="1d"), CPU, torch.float32)
    grid2d = load_backbone(BackboneConfig(model_name=str(tmp_path), positions=positions), CPU, torch.float32)
    assert not hasattr(plain, "arc_positions")
    assert all(not t.weight.any() for t in grid2d.arc_positions.tables.values())
    ids = torch.tensor([e.tokens for e in examples_of_ragged_sizes()[:1]])
    with torch.no_grad():
        want = plain(inputs_embeds=embed(plain, ids)).logits
        got = grid2d(inputs_embeds=embed(grid2d, ids)).logits
    assert torch.equal(got, want)
    # the tables are trainable and do change the logits once they move
    assert all(p.requires_grad for p in grid2d.arc_positions.parameters())
    with torch.no_grad():
        grid2d.arc_positions.tables["row"].weight.normal_()
        moved = grid2d(inputs_embeds=embed(grid2d, ids)).logits
    assert not torch.equal(moved, want)


def _tiny_run(tmp_path, name, **kw):
    from arc_efe.saved.config import TrainConfig
    from arc_efe.training.run import train

    base = dict(data="synthetic/flip_lr:4", output_dir=str(tmp_path), run_name=name, device="cpu", epochs=1,
                max_batches=2, batch_size=2, val_fraction=0.0, train_eval_queries=2, max_val_tasks=2,
                icl_tasks=4, tensorboard=False, max_len=512, memory=False)
    return train(TrainConfig(**{**base, **kw}))


def test_checkpoints_record_positions_and_old_ones_load_as_1d(tmp_path):
    import json

    from arc_efe.inference.evaluate import load_policy
    from arc_efe.saved.config import read_run_config

    new = _tiny_run(tmp_path, "new", positions="2d-mirror")
    assert read_run_config(new).positions == "2d-mirror"
    policy, *_ = load_policy(new, "tiny", CPU)
    assert policy.backbone.arc_positions.kind == "2d-mirror"
    # a run from before grid positions: trained without them, and its config.json has no key
    old = _tiny_run(tmp_path, "old", positions="1d")
    cfg_path = old / "config.json"
    saved = json.loads(cfg_path.read_text())
    del saved["positions"]
    cfg_path.write_text(json.dumps(saved))
    assert read_run_config(old).positions == "1d"
    policy, *_ = load_policy(old, "tiny", CPU)
    assert not hasattr(policy.backbone, "arc_positions")
    prompt = encode_task([Pair(grid(2, 2, 1), grid(2, 2, 2))], grid(2, 2, 3)).prompt
    assert policy.greedy([prompt], max_side=3)[0] is not None


def test_epochs_report_in_context_accuracy_and_the_diagnosis_reads_it(tmp_path, capsys):
    import json

    from arc_efe.reporting.diagnosis import diagnose
    from arc_efe.reporting.runlog import load_run

    run = _tiny_run(tmp_path, "icl", epochs=3, max_batches=1)
    out = capsys.readouterr().out
    assert out.count("In-context Accuracy: 0.00% (0/4 fresh generated tasks, no test-time training)") == 3
    config, records = load_run(run)
    epochs = [r for r in records if r.get("kind") == "epoch"]
    assert [(e["icl_right"], e["icl_total"]) for e in epochs] == [(0, 4)] * 3
    titles = [f.title for f in diagnose(config, records)]
    assert "no fresh task solved in context after 3 epochs" in titles
    # once one is solved, the diagnosis says so instead
    epochs[-1].update(icl_right=1, icl_accuracy=0.25)
    titles = [f.title for f in diagnose(config, records)]
    assert "in-context rule learning is rising" in titles and not any("no fresh task" in t for t in titles)
    assert json.loads((run / "config.json").read_text())["icl_tasks"] == 4

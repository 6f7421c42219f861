"""The Policy: the whole network (backbone, grid positions, output head) as the model that writes
an answer grid, token by token, over the ARC vocabulary. (The users' `--agent-lr` is the rate
of the output head, the "agent" of their own system, not of this whole network.)

`Policy.forward` runs the backbone on a batch (teacher forcing, for the loss). `Policy.greedy`
writes answers for prompts that end with the query's OUT marker, with a grid constraint
that only lets well-formed grids out: every row as wide as the first, at most 30x30, a row
closed before END. The prompt's key/value cache is reused for every generated token.

`memory` is where Solver2 enters: its gated readout, one vector per sequence, added to
every input embedding (none by default). Grid positions (`positions.py`) are added to the
input embeddings as well; while decoding, each new token's place follows from the tokens
written so far. `decode_queries` gives the greedy answers to queries seen through views,
mapped back (training accuracy and Solver2's success rule use it).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from ..data.dataset import Query
from ..data.packing import ATTENTION
from ..data.sequences import pad_rows, view_prompt
from ..data.tasks import MAX_SIDE, NUM_COLOURS, Grid
from ..data.tokens import END, PAD, ROW, VOCAB_SIZE, try_decode_grid
from ..data.views import View
from .positions import embed, newest_places

# transformers renamed `past_key_values` to `cache` (argument and output field) in 5.x.
CACHE_KEY = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"
DECODE_BATCH = 8  # queries decode_queries answers together


class GridConstraint:
    """Which tokens may come next so that the answer stays a well-formed grid (of `shape`
    (height, width) exactly, when given)."""

    def __init__(self, max_side: int = MAX_SIDE, shape: tuple[int, int] | None = None) -> None:
        self.max_side = max_side
        self.shape = shape if shape is not None and max(shape) <= max_side else None
        self.width: int | None = None if self.shape is None else self.shape[1]  # else fixed by the first row
        self.col = 0
        self.rows = 0
        self.done = False

    def copy(self) -> "GridConstraint":
        c = GridConstraint(self.max_side, self.shape)
        c.width, c.col, c.rows, c.done = self.width, self.col, self.rows, self.done
        return c

    def allowed(self) -> list[int]:
        if self.done:
            return [PAD]
        if self.shape is not None and self.rows == self.shape[0]:
            return [END]
        limit = self.width if self.width is not None else self.max_side
        out: list[int] = list(range(NUM_COLOURS)) if self.col < limit else []
        if self.col > 0 and (self.width is None or self.col == self.width):
            out.append(ROW)
        if self.col == 0 and self.rows > 0 and self.shape is None:
            out.append(END)
        if self.rows >= self.max_side and self.col == 0:
            out = [END]
        return out

    def step(self, token: int) -> None:
        if self.done:
            return
        if token == END:
            self.done = True
        elif token == ROW:
            self.width = self.col if self.width is None else self.width
            self.rows += 1
            self.col = 0
        else:
            self.col += 1


class Policy(nn.Module):
    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def _embed(self, input_ids: torch.Tensor, memory: torch.Tensor | None,
               places: torch.Tensor | None = None) -> torch.Tensor:
        return embed(self.backbone, input_ids, memory, places)

    def _packed_kwargs(self, input_ids: torch.Tensor, attention_mask, packed_segments) -> dict:
        """Packed rows with packing.ATTENTION: the sequences' places, and an all-ones mask so
        that transformers does not build the block-diagonal mask the attention would ignore.
        Other attentions (flash) get no mask and find the sequences from the position ids."""
        if packed_segments is None or getattr(self.backbone.config, "_attn_implementation", None) != ATTENTION:
            return {"attention_mask": attention_mask}
        return {"attention_mask": torch.ones_like(input_ids), "packed_segments": packed_segments}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                memory: torch.Tensor | None = None, hidden: bool = False,
                position_ids: torch.Tensor | None = None, packed_segments=None):
        """(B, L, V) logits for every position (teacher forcing); with `hidden`, also the
        (B, L, H) last hidden states. `memory` is Solver2's gated readout: (B, H), added to
        every input embedding of its row, or (B, L, H), one vector per token (packed rows).
        Packed rows pass `position_ids` that restart at each sequence and no mask
        (see packing.py)."""
        out = self.backbone(inputs_embeds=self._embed(input_ids, memory), position_ids=position_ids,
                            use_cache=False, output_hidden_states=hidden,
                            **self._packed_kwargs(input_ids, attention_mask, packed_segments))
        return (out.logits, out.hidden_states[-1]) if hidden else out.logits

    @torch.no_grad()
    def greedy(self, prompts: list[list[int]], memory: torch.Tensor | None = None,
               max_side: int = MAX_SIDE, shapes: list[tuple[int, int] | None] | None = None) -> list[Grid | None]:
        """Greedy answers (at most max_side x max_side; of shapes[i] when given) for a batch of prompts."""
        device = next(self.backbone.parameters()).device
        b = len(prompts)
        ids, mask = pad_rows(prompts, left=True)  # every prompt ends at the last column
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        written = ids  # the prompts and the tokens written so far: their grid places follow
        out = self.backbone(inputs_embeds=self._embed(ids, memory), attention_mask=mask,
                            position_ids=positions, use_cache=True)
        cache = getattr(out, CACHE_KEY)
        logits = out.logits[:, -1]
        states = [GridConstraint(max_side, None if shapes is None else shapes[i]) for i in range(b)]
        answers: list[list[int]] = [[] for _ in range(b)]
        next_pos = positions[:, -1:] + 1
        for _ in range(max_side * (max_side + 1) + 1):
            allowed = torch.full((b, VOCAB_SIZE), float("-inf"), device=device)
            for i, s in enumerate(states):
                allowed[i, s.allowed()] = 0.0
            tokens = (logits.float() + allowed).argmax(-1)
            for i, t in enumerate(tokens.tolist()):  # one host sync per generated token
                if not states[i].done:
                    answers[i].append(t)
                    states[i].step(t)
            if all(s.done for s in states):
                break
            mask = torch.cat([mask, mask.new_ones(b, 1)], 1)
            written = torch.cat([written, tokens[:, None]], 1)
            places = newest_places(self.backbone, written)
            out = self.backbone(inputs_embeds=self._embed(tokens[:, None], memory, places), attention_mask=mask,
                                position_ids=next_pos, use_cache=True, **{CACHE_KEY: cache})
            cache = getattr(out, CACHE_KEY)
            logits = out.logits[:, -1]
            next_pos = next_pos + 1
        return [try_decode_grid(a) for a in answers]


def greedy_in_batches(policy: Policy, prompts: Sequence[list[int]], memory: torch.Tensor | None = None,
                      max_side: int = MAX_SIDE, shapes: Sequence[tuple[int, int] | None] | None = None
                      ) -> list[Grid | None]:
    """`Policy.greedy` over any number of prompts, DECODE_BATCH at a time, shortest first (the
    least padding). `memory` (P, H): Solver2's readout per prompt, when there is one."""
    answers: list[Grid | None] = [None] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for start in range(0, len(order), DECODE_BATCH):
        chunk = order[start:start + DECODE_BATCH]
        mem = None if memory is None else memory[chunk]
        got = policy.greedy([prompts[i] for i in chunk], mem, max_side,
                           None if shapes is None else [shapes[i] for i in chunk])
        for i, grid in zip(chunk, got):
            answers[i] = grid
    return answers


def decode_queries(policy: Policy, queries: Sequence[Query], view: View | Sequence[View], max_len: int,
                   memory: torch.Tensor | None = None, max_side: int = MAX_SIDE,
                   shape_rule: bool = True) -> list[Grid | None]:
    """Greedy answers for queries seen through `view` (one for all, or one per query), mapped
    back; None for a query whose prompt does not fit max_len. `memory` (Q, H) holds Solver2's
    readout for each query, when there is one. With `shape_rule` an answer has the size its
    demonstrations agree on (`answer_shape`), as in `arc-efe evaluate`."""
    views = [view] * len(queries) if isinstance(view, View) else list(view)
    encoded = [view_prompt(q.context, q.target.input, v, max_len, shape_rule=shape_rule)
               for q, v in zip(queries, views)]
    todo = [i for i, (enc, _) in enumerate(encoded) if enc is not None]
    answers: list[Grid | None] = [None] * len(queries)
    was_training = policy.training
    policy.eval()
    try:
        got = greedy_in_batches(policy, [encoded[i][0].prompt for i in todo],
                                None if memory is None else memory[todo], max_side,
                                [encoded[i][1] for i in todo])
    finally:
        policy.train(was_training)
    for i, grid in zip(todo, got):
        answers[i] = None if grid is None else views[i].invert_grid(grid)
    return answers

"""Candidate answers and their likelihoods: depth-first decoding and teacher-forced scoring.

`dfs_candidates` explores the answer tokens of one prompt depth first, most likely token
first, and keeps every complete, well-formed grid whose probability stays at or above
`min_prob` (pruning every branch as soon as its running probability falls below it), up to
`max_candidates` grids and `max_steps` forward passes. With `min_prob` above 0.5 only the
greedy path can survive, so it is the greedy decoder as a special case. The prompt is run
once; the key/value cache is then extended by one token per step and cropped back when
the search returns to a shorter prefix, so every candidate of a prompt shares its cache.

`answer_logliks` scores given answers under given prompts by teacher forcing: the total
log-probability of each answer's tokens (including END) and the mean entropy of the
predictions at those tokens, the two numbers selection and the per-candidate EFE need.
Probabilities are the model's own (no renormalisation over the tokens the grid constraint
allows), so a candidate scores the same whichever decoder found it. `prompt_logliks` gives
the same numbers for many answers after one prompt: the prompt runs once and every answer
extends its key/value cache, which is cropped back after each, so a long prompt (a full-size
task, thousands of tokens) is not run again for every candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..data.sequences import pad_rows
from ..data.tasks import MAX_SIDE, Grid
from ..data.tokens import END, answer_tokens, try_decode_grid
from ..model.policy import CACHE_KEY, Policy, GridConstraint
from ..model.positions import backbone_places, grid_module, newest_places

SCORE_BATCH = 8


@dataclass(frozen=True)
class Decoded:
    grid: Grid
    logprob: float  # natural log of the answer's probability under the prompt


@dataclass
class _Node:
    tokens: list[int]  # answer tokens so far; the last one is not yet in the cache
    logprob: float
    state: GridConstraint


@torch.no_grad()
def dfs_candidates(policy: Policy, prompt: Sequence[int], min_prob: float = 0.1, max_candidates: int = 8,
                   max_side: int = MAX_SIDE, memory: torch.Tensor | None = None,
                   max_steps: int = 4000, shape: tuple[int, int] | None = None) -> list[Decoded]:
    """Every well-formed answer (of `shape` when given) with probability >= min_prob, most
    probable first.

    `memory` (1, H) is Solver2's readout for this prompt. The search visits children in
    order of probability, so the first candidate found is the greedy answer whenever that
    clears `min_prob`."""
    if not 0.0 < min_prob <= 1.0:
        raise ValueError(f"min_prob must be in (0, 1], got {min_prob}")
    backbone = policy.backbone
    device = next(backbone.parameters()).device
    ids = torch.tensor([list(prompt)], device=device)
    out = backbone(inputs_embeds=policy._embed(ids, memory), use_cache=True)
    cache = getattr(out, CACHE_KEY)
    prompt_len = ids.shape[1]
    threshold = math.log(min_prob)
    found: list[Decoded] = []

    def expand(node: _Node, logits: torch.Tensor) -> list[_Node]:
        """Children above the threshold, most likely first; complete grids go to `found`."""
        logp = F.log_softmax(logits.float(), -1)
        allowed = node.state.allowed()
        children = []
        for token_lp, token in sorted(zip(logp[allowed].tolist(), allowed), key=lambda x: (-x[0], x[1])):
            total = node.logprob + token_lp
            if total < threshold:
                break  # sorted: every later child is less likely still
            state = node.state.copy()
            state.step(token)
            child = _Node(node.tokens + [token], total, state)
            if token != END:
                children.append(child)
            elif (grid := try_decode_grid(child.tokens)) is not None:
                found.append(Decoded(grid, total))
        return children

    stack = expand(_Node([], 0.0, GridConstraint(max_side, shape)), out.logits[0, -1])[::-1]
    steps = 0
    while stack and len(found) < max_candidates and steps < max_steps:
        node = stack.pop()
        # The cache holds an ancestor path of this node's parent: crop it to the parent's
        # prefix, feed the node's last token and read the logits for its children.
        cache.crop(prompt_len + len(node.tokens) - 1 - cache.get_seq_length())
        pos = torch.tensor([[prompt_len + len(node.tokens) - 1]], device=device)
        tok = torch.tensor([[node.tokens[-1]]], device=device)
        # the new token's place in the grid being written
        places = newest_places(backbone, torch.tensor([list(prompt) + node.tokens], device=device))
        out = backbone(inputs_embeds=policy._embed(tok, memory, places), position_ids=pos, use_cache=True,
                       **{CACHE_KEY: cache})
        cache = getattr(out, CACHE_KEY)
        steps += 1
        stack.extend(expand(node, out.logits[0, -1])[::-1])  # the most likely child is popped first
    return sorted(found, key=lambda d: -d.logprob)[:max_candidates]


@dataclass(frozen=True)
class Likelihood:
    logprob: float  # total log-probability of the answer tokens (nats)
    tokens: int  # number of answer tokens scored
    entropy: float  # mean entropy of the predictions at those tokens (nats)


@torch.no_grad()
def answer_logliks(policy: Policy, prompts: Sequence[Sequence[int]], answers: Sequence[Grid],
                   memory: torch.Tensor | None = None) -> list[Likelihood]:
    """Teacher-forced likelihood of answers[i] after prompts[i]. `memory` (N, H) is
    Solver2's readout per pair, when there is one."""
    device = next(policy.backbone.parameters()).device
    results: list[Likelihood | None] = [None] * len(prompts)
    seqs = [(list(p), answer_tokens(a)) for p, a in zip(prompts, answers)]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]) + len(seqs[i][1]))
    for start in range(0, len(order), SCORE_BATCH):
        chunk = order[start:start + SCORE_BATCH]
        ids, mask = pad_rows([seqs[i][0] + seqs[i][1] for i in chunk])
        mem = None if memory is None else memory[chunk]
        logits = policy(ids.to(device), mask.to(device), mem).float()
        logp = F.log_softmax(logits, -1)
        for r, i in enumerate(chunk):
            p_len, a = len(seqs[i][0]), seqs[i][1]
            rows = logp[r, p_len - 1: p_len - 1 + len(a)]  # position t predicts token t + 1
            target = torch.tensor(a, device=rows.device)
            total = rows.gather(-1, target[:, None]).sum().item()
            entropy = -(rows.exp() * rows).sum(-1).mean().item()
            results[i] = Likelihood(total, len(a), entropy)
    return results  # type: ignore[return-value]


@torch.no_grad()
def prompt_logliks(policy: Policy, prompt: Sequence[int], answers: Sequence[Grid],
                   memory: torch.Tensor | None = None) -> list[Likelihood]:
    """`answer_logliks` of every answer after the one `prompt`, the prompt's key/value cache
    shared. `memory` (1, H) is Solver2's readout for this prompt."""
    if not answers:
        return []
    backbone = policy.backbone
    device = next(backbone.parameters()).device
    ids = torch.tensor([list(prompt)], device=device)
    out = backbone(inputs_embeds=policy._embed(ids, memory), use_cache=True)
    cache = getattr(out, CACHE_KEY)
    first = F.log_softmax(out.logits[0, -1].float(), -1)  # the prediction of each answer's first token
    p_len = ids.shape[1]
    results = []
    for answer in answers:
        a = answer_tokens(answer)  # a grid's tokens and END: never fewer than three
        cache.crop(p_len - cache.get_seq_length())  # back to the prompt alone
        fed = torch.tensor([a[:-1]], device=device)
        places = None
        if grid_module(backbone) is not None:  # the answer tokens' places, read from the whole sequence
            places = backbone_places(backbone, torch.cat([ids, fed], 1))[:, p_len:]
        pos = torch.arange(p_len, p_len + len(a) - 1, device=device)[None]
        step = backbone(inputs_embeds=policy._embed(fed, memory, places), position_ids=pos, use_cache=True,
                        **{CACHE_KEY: cache})
        cache = getattr(step, CACHE_KEY)
        rows = torch.cat([first[None], F.log_softmax(step.logits[0].float(), -1)])
        target = torch.tensor(a, device=rows.device)
        total = rows.gather(-1, target[:, None]).sum().item()
        entropy = -(rows.exp() * rows).sum(-1).mean().item()
        results.append(Likelihood(total, len(a), entropy))
    return results

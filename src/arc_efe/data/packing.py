"""Packed batches: several training sequences per row, attention kept inside each one.

A padded batch spends compute on padding: a micro-batch mixes sequences of a few hundred and
of a couple of thousand tokens (forward, second view, inverse task). `pack`
places the sequences into rows of at most `max_tokens` tokens (first-fit, longest first; in
training, one row for the whole micro-batch unless `--max-tokens` says otherwise) and
gives every token its position within its own sequence. With no attention mask and those
position ids, transformers' Qwen2 builds a block-diagonal causal mask (sdpa and eager on
CPU; flash attention on GPU reads the same ids as sequence boundaries), so each sequence sees
exactly what it would see alone: same positions, same keys. Only the tail of a row is padding.

The answer tokens come out in example order, exactly as from `sequences.collate`, so the loss
terms, the consistency alignment and the per-query figures do not know which layout ran;
`Batch.place` and `Batch.spread` map an example's positions and its Solver2 memory vector
onto the packed rows.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .sequences import Batch, Example, collate, pad_rows


def pack_rows(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Example indices per row: first fit, longest first. A sequence longer than
    `max_tokens` gets a row of its own."""
    rows: list[list[int]] = []
    free: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for r, room in enumerate(free):
            if lengths[i] <= room:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(max_tokens - lengths[i])
    return rows


def pack(examples: Sequence[Example], max_tokens: int) -> Batch:
    lengths = [len(e.tokens) for e in examples]
    layout = pack_rows(lengths, max_tokens)
    ids, _ = pad_rows([[t for i in row for t in examples[i].tokens] for row in layout])
    width = ids.shape[1]
    positions = torch.zeros((len(layout), width), dtype=torch.long)
    owner = torch.full((len(layout), width), -1, dtype=torch.long)
    example_row, example_start = [0] * len(examples), [0] * len(examples)
    for r, row in enumerate(layout):
        at = 0
        for i in row:
            n = lengths[i]
            positions[r, at: at + n] = torch.arange(n)
            owner[r, at: at + n] = i
            example_row[i], example_start[i] = r, at
            at += n
        # the padding tail counts from 0 again: a block of its own that no sequence sees
        positions[r, at:] = torch.arange(width - at)
    rows, cols, targets, offsets = [], [], [], []
    total = 0
    for i, e in enumerate(examples):  # answer tokens in example order, as in collate
        start = example_start[i] + e.answer_start - 1  # logits at t predict token t + 1
        rows += [example_row[i]] * e.answer_len
        cols += range(start, start + e.answer_len)
        targets += e.tokens[e.answer_start: e.answer_start + e.answer_len]
        offsets.append(total)
        total += e.answer_len
    segments = [[(example_start[i], example_start[i] + lengths[i]) for i in row] for row in layout]
    for r, row in enumerate(layout):  # the padding tail is a segment too: every token is covered
        end = example_start[row[-1]] + lengths[row[-1]]
        if end < width:
            segments[r].append((end, width))
    return Batch(ids, None, torch.tensor(rows), torch.tensor(cols), torch.tensor(targets), offsets,
                 positions, owner, example_row, example_start, real_tokens=sum(lengths),
                 segments=[sorted(s) for s in segments])


def make_batch(examples: Sequence[Example], pack_rows_of: int | None, packed: bool = True) -> Batch:
    """Packed rows of up to `pack_rows_of` tokens (None: all examples in one row), or one
    padded row per example (`packed=False`)."""
    if not packed:
        return collate(examples)
    return pack(examples, pack_rows_of or sum(len(e.tokens) for e in examples))


# --- attention for packed rows ------------------------------------------------------------
# transformers honours the position-id resets by building a block-diagonal mask, and sdpa
# with an explicit mask on CPU computes every masked block (and leaves the fast causal
# kernel): a packed row of 1024 tokens costs more than the padded rows it replaces. Given the
# sequences' places (`packed_segments`, passed through the model's keyword arguments), this
# attention runs the causal kernel on each sequence on its own and ignores the mask; without
# them it is transformers' sdpa attention, unchanged.
ATTENTION = "arc_packed_sdpa"


def packed_sdpa_attention(module, query, key, value, attention_mask, packed_segments=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if query.shape[2] == 1 and query.device.type == "cpu" and not query.requires_grad:
        return decode_step_attention(module, query, key, value, attention_mask, kwargs.get("scaling"))
    if packed_segments is None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    rows = []
    for r, segments in enumerate(packed_segments):
        parts = [sdpa_attention_forward(module, query[r:r + 1, :, s:e], key[r:r + 1, :, s:e],
                                        value[r:r + 1, :, s:e], None, is_causal=True, **kwargs)[0]
                 for s, e in segments]
        rows.append(torch.cat(parts, dim=1))  # (1, L, heads, head_dim)
    return torch.cat(rows), None


def decode_step_attention(module, query, key, value, attention_mask, scaling=None):
    """Attention of one new token per row over a key/value cache, in plain matrix products.

    On a CPU, sdpa's kernels are slow for a single query against thousands of cached keys
    with a padding mask (a batch of left-padded prompts while decoding): slower than these two
    products (README, "Decoding attention"). Same result; the heads that share a key/value head
    (grouped-query attention) are multiplied together."""
    b, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    q = query.reshape(b, kv_heads, heads // kv_heads, dim)  # repeat_kv's order: head = kv head * groups + g
    scale = dim ** -0.5 if scaling is None else scaling
    scores = torch.matmul(q, key.transpose(-1, -2)).float() * scale  # (b, kv_heads, groups, keys)
    if attention_mask is not None:
        mask = attention_mask[..., -1:, :].reshape(attention_mask.shape[0], 1, 1, -1)  # the newest token's row
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask.float()
    probs = torch.softmax(scores, -1).to(value.dtype)
    out = torch.matmul(probs, value)  # (b, kv_heads, groups, dim)
    return out.reshape(b, 1, heads, dim), None


def register_attention() -> str:
    """Make `ATTENTION` known to transformers (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, packed_sdpa_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    return ATTENTION

"""Training throughput: arc-efe's packed step versus Hugging Face `transformers.Trainer`.

    OMP_NUM_THREADS=1 python benchmarks/throughput.py                  # 4 rounds of 8 steps
    OMP_NUM_THREADS=1 python benchmarks/throughput.py --rounds 2 --steps 4

Both sides train the same tiny Qwen2 (same initial weights, the 16-token ARC vocabulary, the
plain token stream: `--positions 1d`, since a stock Qwen2 has no grid places) on
the same examples in the same order: each step's queries come from arc-efe's own micro-batch
(no views, risk term only, no memory, so both sides run exactly one sequence per query and
the same objective: cross-entropy on the answer tokens, mean per answer token).

- arc-efe: `Trainer.step` with packed rows (`--max-tokens`, default: one row per micro-batch).
- HF Trainer, default collator: the examples tokenised the plain way, padded to the longest
  example of the set (the default collator stacks, it does not pad), labels = the answer
  tokens (-100 elsewhere), AdamW, sequential sampler.
- HF Trainer, per-batch padding: the same, but each batch padded only to its own longest
  example (what a padding collator does).

A step is timed from the start of its forward pass to the end of its optimizer step (data
preparation excluded on every side); the first step of each round is a warm-up and not
counted. Rounds alternate between the sides so that load changes on a shared machine hit
all of them. Printed: answer tokens per second of each side and the ratio.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
import warnings
from pathlib import Path

import torch

from arc_efe.data.tokens import PAD
from arc_efe.saved.config import TrainConfig
from arc_efe.training.run import setup

from common import RISK_ALONE


class Rows(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def hf_rows(examples, length: int | None) -> list[dict]:
    """input_ids / attention_mask / labels (answer tokens only), padded to `length` (None: not padded)."""
    rows = []
    for e in examples:
        n = len(e.tokens)
        width = n if length is None else length
        ids = torch.full((width,), PAD, dtype=torch.long)
        ids[:n] = torch.tensor(e.tokens)
        mask = torch.zeros(width, dtype=torch.long)
        mask[:n] = 1
        labels = torch.full((width,), -100, dtype=torch.long)
        labels[e.answer_start: e.answer_start + e.answer_len] = ids[e.answer_start: e.answer_start + e.answer_len]
        rows.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return rows


def pad_batch(rows: list[dict]) -> dict:
    width = max(len(r["input_ids"]) for r in rows)
    fill = {"input_ids": PAD, "attention_mask": 0, "labels": -100}
    return {k: torch.stack([torch.nn.functional.pad(r[k], (0, width - len(r[k])), value=v) for r in rows])
            for k, v in fill.items()}


def hf_round(model, rows: list[dict], batch_size: int, lr: float, collator, out: Path) -> tuple[int, float]:
    """One Trainer.train() over `rows` (one step per batch); answer tokens and seconds of
    every step but the first."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    times, tokens = [], []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    class Sequential(Trainer):
        def _get_train_sampler(self, *args, **kw):
            return torch.utils.data.SequentialSampler(self.train_dataset)

        def training_step(self, model, inputs, *args, **kw):
            tokens.append(int((inputs["labels"] != -100).sum()))
            return super().training_step(model, inputs, *args, **kw)

    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=batch_size, learning_rate=lr,
                             num_train_epochs=1, weight_decay=0.0, adam_beta2=0.95, max_grad_norm=1.0,
                             lr_scheduler_type="constant", logging_strategy="no", save_strategy="no",
                             report_to="none", use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
                             remove_unused_columns=False)
    trainer = Sequential(model=model, args=args, train_dataset=Rows(rows), data_collator=collator,
                         callbacks=[Clock()])
    trainer.train()
    return sum(tokens[1:]), sum(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="arc-agi-1/training")
    p.add_argument("--rounds", type=int, default=4, help="alternations of the sides; more for steadier figures")
    p.add_argument("--steps", type=int, default=8, help="steps per side per round (the first is a warm-up)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-len", type=int, default=1024)
    p.add_argument("--max-tokens", type=int, default=None, help="tokens per packed row (default: one row per step)")
    p.add_argument("--model-name", default="tiny")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    from transformers import default_data_collator

    out = Path(tempfile.mkdtemp(prefix="throughput_"))
    cfg = TrainConfig(data=args.data, output_dir=str(out), run_name="arc_efe", device="cpu", epochs=1, positions="1d",
                      batch_size=args.batch_size, max_len=args.max_len, max_tokens=args.max_tokens,
                      augment=False, memory=False, weights=dict(RISK_ALONE), val_fraction=0.0,
                      tensorboard=False, warmup_steps=1, agent_lr=1e-3)
    run = setup(cfg)
    hf_model = type(run.policy.backbone)(copy.deepcopy(run.policy.backbone.config))
    hf_model.load_state_dict(run.policy.backbone.state_dict())  # the same initial weights
    hf_model.set_attn_implementation("sdpa")  # transformers' own attention on the HF side
    sides = {"arc-efe (packed)": [0, 0.0], "HF Trainer (default collator)": [0, 0.0],
             "HF Trainer (per-batch padding)": [0, 0.0]}
    step = 0
    for r in range(args.rounds):
        micro = [run.micro_batch(0, step + k) for k in range(args.steps)]
        examples = [e for mb in micro for e in mb.examples]
        longest = max(len(e.tokens) for e in examples)
        # arc-efe
        tok = sec = 0.0
        for k, mb in enumerate(micro):
            t0 = time.perf_counter()
            run.step(0, [mb])
            if k > 0:
                sec += time.perf_counter() - t0
                tok += sum(e.answer_len for e in mb.examples)
        sides["arc-efe (packed)"][0] += tok
        sides["arc-efe (packed)"][1] += sec
        # Hugging Face, both collators
        for name, rows, collator in (("HF Trainer (default collator)", hf_rows(examples, longest), default_data_collator),
                                     ("HF Trainer (per-batch padding)", hf_rows(examples, None), pad_batch)):
            t, s = hf_round(hf_model, rows, args.batch_size, cfg.agent_lr, collator, out / "hf")
            sides[name][0] += t
            sides[name][1] += s
        step += args.steps
        line = ", ".join(f"{n}: {t / max(s, 1e-9):.0f}" for n, (t, s) in sides.items())
        print(f"round {r + 1}/{args.rounds} (answer tokens/s so far) {line}", flush=True)
    print(f"\n{args.rounds} rounds x {args.steps - 1} timed steps, batch {args.batch_size} queries, "
          f"model {args.model_name}, {torch.get_num_threads()} thread(s), max_len {args.max_len}")
    ours = sides["arc-efe (packed)"][0] / sides["arc-efe (packed)"][1]
    for name, (t, s) in sides.items():
        rate = t / s
        ratio = "" if name.startswith("arc-efe") else f"   arc-efe / this = {ours / rate:.2f}x"
        print(f"  {name:<32} {rate:8.0f} answer tokens/s ({int(t)} tokens in {s:.1f}s){ratio}")


if __name__ == "__main__":
    main()

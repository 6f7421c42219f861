"""`arc-efe evaluate`: answer every test input of a source, write submission.json, score it.

Two attempts per test output: the greedy answer on the task as it is and on the transposed
task mapped back (Solver2's memory joins in when the checkpoint has a bank). With known
answers the official pass@2 score is printed with a per-task table and written with every
attempt to `eval.jsonl`. The model is a trained run (`--checkpoint RUN_DIR`, its latest
checkpoint) or a fresh backbone (`--model-name`, default tiny).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from .agent import Agent
from .backbone import BackboneConfig, load_backbone, load_trainable
from .checkpoint import latest_checkpoint
from .dataset import make_queries
from .device import default_dtype, resolve_device
from .errors import ArcEfeError
from .evaluation import decode_queries
from .files import atomic_write_text, read_safetensors
from .memory import MemoryBank
from .scoring import make_entry, report_lines, score_submission, write_submission
from .solver2 import Solver2, task_keys
from .sequences import Example
from .sources import load_tasks
from .tokens import encode_task
from .views import View

ATTEMPT_VIEWS = (View(), View(4))


def load_agent(run_dir: Path | None, model_name: str, device: torch.device):
    """(agent, solver2, bank, max_len) of a run's latest checkpoint, or a fresh backbone."""
    dtype = default_dtype(device)
    if run_dir is None:
        backbone = load_backbone(BackboneConfig(model_name=model_name), device, torch.float32)
        return Agent(backbone).eval(), None, None, 2048
    try:
        cfg = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ArcEfeError(f"{run_dir}/config.json: cannot read the run's settings ({e})") from None
    ckpt = latest_checkpoint(run_dir)
    weight_dtype = dtype if cfg.get("mode") in ("frozen", "lora") else torch.float32
    backbone = load_backbone(BackboneConfig(model_name=cfg["model_name"], mode=cfg["mode"],
                                            lora_rank=cfg["lora_rank"], lora_alpha=cfg["lora_alpha"]),
                             device, weight_dtype)
    for p in backbone.get_output_embeddings().parameters():  # saved in float32 by training
        p.data = p.data.float()
    load_trainable(backbone, ckpt / "model.safetensors")
    solver2 = bank = None
    if (ckpt / "memory.json").exists() and (ckpt / "solver2.safetensors").exists():
        hidden = backbone.get_input_embeddings().embedding_dim
        solver2 = Solver2(hidden, top_k=cfg.get("memory_top_k", 4)).to(device)
        solver2.load_state_dict(read_safetensors(ckpt / "solver2.safetensors", "Solver2 checkpoint"))
        bank = MemoryBank.load(ckpt)
    return Agent(backbone).eval(), solver2, bank, int(cfg.get("max_len", 2048))


def _prompt_example(q, max_len: int) -> Example:
    """The query's prompt (answer unknown) as an Example, for its task key."""
    enc = encode_task(q.context, q.target.input, None, max_len)
    h, w = q.target.input.shape
    return Example(enc.prompt, len(enc.prompt), 0, context_end=len(enc.prompt) - (h * (w + 1) + 2))


def evaluate(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    run_dir = Path(args.checkpoint) if args.checkpoint else None
    agent, solver2, bank, max_len = load_agent(run_dir, args.model_name, device)
    tasks = load_tasks(args.data, args.solutions, args.skip_invalid, seed=args.seed,
                       count=args.max_tasks or 200).tasks
    if args.task_ids:
        wanted = set(args.task_ids)
        tasks = [t for t in tasks if t.id in wanted]
        missing = wanted - {t.id for t in tasks}
        if missing:
            raise ArcEfeError(f"{args.data}: no task {', '.join(sorted(missing))}")
    tasks = tasks[: args.max_tasks] if args.max_tasks else tasks
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    submission: dict[str, list] = {}
    lines = []
    for task in tasks:
        t0 = time.time()
        queries = make_queries([task], "test")
        memory = None
        if bank is not None and len(bank):
            memory, _ = solver2.readout(bank, task_keys(agent.backbone, [_prompt_example(q, max_len) for q in queries],
                                                        device))
        attempts = [decode_queries(agent, queries, v, max_len, memory, args.max_side) for v in ATTEMPT_VIEWS]
        entries = [make_entry([a[k] for a in attempts if a[k] is not None]) for k in range(len(queries))]
        submission[task.id] = entries
        lines.append({"task_id": task.id, "seconds": time.time() - t0,
                      "sizes": [list(q.target.input.shape) for q in queries], "attempts": entries})
    write_submission(out / "submission.json", submission)
    atomic_write_text(out / "eval.jsonl", "".join(json.dumps(l) + "\n" for l in lines))
    print(f"wrote {out / 'submission.json'} ({len(submission)} tasks)")
    scored = [t for t in tasks if t.has_answers]
    if scored:
        report = score_submission(submission, scored)
        print("\n".join(report_lines(report)))
    else:
        print("answers unknown: not scored (score later with arc-efe score)")
    return 0

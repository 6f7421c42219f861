"""The `arc-efe train` flags (`trainloop_gpu_finetuned.py` takes the same) and the
`TrainConfig` they make. Flag names keep the users' own (`--agent-lr`, `--no-freeze-qwen`,
`--max-batches`, ...).
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from ..errors import ConfigError
from ..loss import DEFAULT_WEIGHTS
from ..model.backbone import ARCHITECTURES
from ..model.device import resolve_device
from ..model.positions import DEFAULT_POSITIONS, POSITIONS
from ..saved.config import LR_PRESETS, TrainConfig
from ..saved.modelfolder import SHIPPED, is_model_folder, model_source, read_model_folder


def add_train_args(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None,
                   help="task source (default: training.json here if present, else arc-agi-1/training); "
                        "synthetic or synthetic/<family> for generated tasks; join sources with +")
    g.add_argument("--mix", default=None,
                   help="weights of the sources joined by + in --data, e.g. --data "
                        "arc-agi-1/training+synthetic --mix 0.3,0.7 (default: equal)")
    g.add_argument("--solutions", default=None, help="solutions file for a challenges file")
    g.add_argument("--skip-invalid", action="store_true", help="leave out invalid tasks instead of stopping")
    g.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="fraction of tasks held out for validation accuracy (by task)")
    g.add_argument("--max-len", type=int, default=d.max_len,
                   help="longest sequence in tokens; demonstrations are dropped to fit. Lower it if you OOM")
    g.add_argument("--no-augment", dest="augment", action="store_false",
                   help="train on the tasks as they are, without random views")
    g.add_argument("--curriculum", action="store_true",
                   help="generated tasks start with grids of at most 3x3 and grow to the source's limit "
                        "(e.g. synthetic:8) halfway through training: small grids first, as in the "
                        "pretraining recipe (README)")
    g.add_argument("--no-pack", dest="pack", action="store_false",
                   help="one padded row per sequence instead of packed rows; only to compare "
                        "or to rule packing out when chasing a bug (it wastes compute on padding)")
    g.add_argument("--max-tokens", type=int, default=None,
                   help="tokens per packed row (default: the whole micro-batch in one row, the "
                        "fastest with sdpa or flash attention). Set it, e.g. to --max-len, with an "
                        "attention that builds a full mask (eager), or if a long row runs out of memory")
    g = p.add_argument_group("model")
    g.add_argument("--model-name", default=None,
                   help=f"preset ({', '.join(ARCHITECTURES)}; default {d.model_name}), hub id or local folder "
                        "of a Qwen2/Qwen3 model")
    g.add_argument("--init", default=None, metavar="PATH",
                   help="the weights to start from: a model folder such as models/arc-efe-tiny (the shipped "
                        "pretrained model), a training run or one of its checkpoints (full mode); its model "
                        "and grid positions come with it. 'none': random weights. Default: the shipped model "
                        "when it fits the other flags (no --model-name or other --positions, full mode, a CPU), "
                        "else random weights")
    g.add_argument("--positions", choices=POSITIONS, default=None,
                   help=f"how the model sees where a token is (default {DEFAULT_POSITIONS}): 2d adds learned "
                        "row, column and grid-role embeddings (zero at the start for a pretrained model), "
                        "2d-mirror also the mirrored row and column, 2d-paired also the paired input's colours "
                        "at the flipped, rotated and tiled places, 2d-match also whether each output cell "
                        "has each of those colours, 1d only the token stream (for comparison)")
    frz = g.add_mutually_exclusive_group()
    frz.add_argument("--no-freeze-qwen", dest="mode", action="store_const", const="full",
                     help="train the whole backbone (default)")
    frz.add_argument("--freeze-qwen", dest="mode", action="store_const", const="frozen",
                     help="freeze the backbone; only the output head learns")
    frz.add_argument("--lora", dest="mode", action="store_const", const="lora",
                     help="train LoRA adapters on a frozen backbone (large models)")
    g.add_argument("--lora-rank", type=int, default=d.lora_rank)
    g.add_argument("--lora-alpha", type=int, default=d.lora_alpha)
    g.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    g.add_argument("--grad-checkpointing", action="store_true",
                   help="recompute the backbone's activations in the backward pass: much less memory, "
                        "about a third slower. Turn it on when a large model or a long --max-len runs out of memory")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the backbone for training (GPU runs long enough to repay the "
                        "first minutes of compiling; saving, validation and decoding stay uncompiled). "
                        "Leave it off for short runs and on CPU")
    g.add_argument("--fsdp", action="store_true",
                   help="under torchrun, shard the backbone's weights, gradients and optimizer state "
                        "across the ranks (FSDP2) instead of a full copy on each: for a model whose "
                        "training does not fit one GPU. Not needed when it fits (plain data parallel is faster)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--max-batches", type=int, default=None,
                   help="stop each epoch after this many batches (quick checks)")
    g.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="queries per batch; each query makes up to 3 sequences. Lower it if you OOM")
    g.add_argument("--grad-accum-steps", type=int, default=d.grad_accum_steps)
    g.add_argument("--agent-lr", type=float, default=d.agent_lr,
                   help="learning rate of the output head; 1e-4..1e-3 learn, 1e-5 barely moves")
    g.add_argument("--qwen-lr", type=float, default=None, help="backbone learning rate (default: --agent-lr)")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--grad-clip", type=float, default=d.grad_clip, help="max gradient norm (0: off)")
    g.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--preset", choices=list(LR_PRESETS), default=None,
                   help="the usual settings: conservative 5e-5/1e-6, medium 1e-4/1e-5, aggressive 5e-4/1e-4")
    g = p.add_argument_group("loss")
    for name, w in DEFAULT_WEIGHTS.items():
        g.add_argument(f"--{name}-weight", type=float, default=w, help=f"weight of the {name} term")
    g.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    g = p.add_argument_group("Solver2")
    g.add_argument("--success-threshold", default=d.success_threshold,
                   help="when a query counts as solved and is stored: 'exact' (greedy answer exactly "
                        "right) or a per-query risk such as 0.05")
    g.add_argument("--no-memory", dest="memory", action="store_false",
                   help="no memory bank: nothing stored or retrieved")
    g.add_argument("--memory-top-k", type=int, default=d.memory_top_k, help="neighbours retrieved per query")
    g.add_argument("--memory-capacity", type=int, default=d.memory_capacity,
                   help="entries kept; past it the oldest goes")
    g = p.add_argument_group("evaluation and output")
    g.add_argument("--val-frequency", type=int, default=d.val_frequency, help="validate every N epochs")
    g.add_argument("--save-frequency", type=int, default=d.save_frequency, help="checkpoint every N epochs")
    g.add_argument("--save-every-steps", type=int, default=d.save_every_steps, metavar="N",
                   help="also checkpoint every N optimizer steps (0: per epoch only); set it for long "
                        "epochs so a crash loses at most N steps")
    g.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints, metavar="K",
                   help="keep the K newest checkpoints (raise it to go back further, lower it to save disk)")
    g.add_argument("--nan-rollback", type=int, default=d.nan_rollback, metavar="N",
                   help="after N non-finite steps in a row, go back to the last good checkpoint with a "
                        "lower learning rate (0: only skip them)")
    g.add_argument("--rollback-lr-factor", type=float, default=d.rollback_lr_factor,
                   help="learning rate multiplier at each rollback")
    g.add_argument("--max-rollbacks", type=int, default=d.max_rollbacks,
                   help="stop with an error after this many rollbacks")
    g.add_argument("--train-eval-queries", type=int, default=d.train_eval_queries,
                   help="training queries decoded each epoch for training accuracy")
    g.add_argument("--max-val-tasks", type=int, default=d.max_val_tasks)
    g.add_argument("--icl-tasks", type=int, default=d.icl_tasks,
                   help="fresh generated tasks (simple rules, never trained on) answered in context, without "
                        "test-time training, after every epoch: the curve that shows rule learning appear; 0 = off")
    g.add_argument("--output-dir", default=d.output_dir, help="folder that receives the run folder")
    g.add_argument("--run-name", default=None)
    g.add_argument("--no-tensorboard", dest="tensorboard", action="store_false")
    g.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the run saved in RUN_DIR")
    g.add_argument("--resume-checkpoint", default=None, metavar="NAME",
                   help="with --resume: continue from this checkpoint (e.g. step_0000040) instead of the "
                        "latest, e.g. when the latest is damaged")
    p.set_defaults(mode="full")


NO_INIT = "none"  # --init none: random weights


def shipped_start(values: dict) -> bool:
    """Whether a run whose start is not given begins from the shipped pretrained model: it
    exists and fits the flags (no model named, its grid positions, full mode, a CPU). Elsewhere
    (a GPU, another preset or a hub model) the start stays random weights, as named."""
    if values.get("model_name") is not None or not is_model_folder(SHIPPED) or values.get("mode") != "full":
        return False
    if values.get("positions") not in (None, read_model_folder(SHIPPED).positions):
        return False
    return resolve_device(values.get("device") or "auto").type == "cpu"


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names and k != "weights"}
    values["weights"] = {name: getattr(args, f"{name}_weight") for name in DEFAULT_WEIGHTS}
    if values.get("init") == NO_INIT:
        values["init"] = None
    elif values.get("init") is None and shipped_start(values):
        values["init"] = str(SHIPPED)
    if values.get("init"):  # the model and its grid positions are those of the weights
        spec = model_source(values["init"])
        for key in ("model_name", "positions"):
            given, needed = values.get(key), getattr(spec, key)
            if given is not None and given != needed:
                raise ConfigError(f"--init {values['init']} is a {spec.model_name} model with {spec.positions} "
                                  f"positions: --{key.replace('_', '-')} {given} does not fit it")
            values[key] = needed
    for key in ("model_name", "positions"):  # not given: the defaults
        if values.get(key) is None:
            values.pop(key, None)
    return TrainConfig(**values)

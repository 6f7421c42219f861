"""The backbone: a Qwen2/Qwen3 causal LM that reads and writes only the 16 ARC tokens.

A preset (`tiny`, `small`, `base`) builds a randomly initialised Qwen2 model with a
16-row vocabulary, for tests and from-scratch runs. Any other name is a local folder or
a hub id of a pretrained model: it is loaded, and its input embedding and output layer are
cut down to the rows of the tokens whose text matches ours (`tokens.TOKEN_TEXT`), so the
model keeps what it learnt about digits and line breaks while the softmax covers only
ARC tokens.

Training modes: `full` trains everything; `frozen` trains only the output layer (the
agent head); `lora` trains LoRA adapters plus the head and the grid position embeddings
(`positions.py`, attached to the model as `arc_positions`). `head_parameters` and
`backbone_parameters` split the trainable weights so the two can get their own learning
rates, and `save_trainable`/`load_trainable` store just the weights that can change.
"""

from __future__ import annotations

import os
import re
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from safetensors.torch import save as st_save
from torch import nn

from ..data.files import atomic_write_bytes, read_safetensors
from ..data.tokens import BOS, END, PAD, TOKEN_TEXT, VOCAB_SIZE
from ..errors import ArcEfeError
from .positions import DEFAULT_POSITIONS, POSITIONS, attach, position_parameters

_COMMON = dict(vocab_size=VOCAB_SIZE, max_position_embeddings=8192, rope_theta=10000.0,
               tie_word_embeddings=False)
# The architectures a model name can be (`--model-name tiny`): Qwen2Config keyword arguments of
# the random-init models (the learning-rate settings of `--preset` are saved/config.py LR_PRESETS).
ARCHITECTURES: dict[str, dict] = {
    "tiny": dict(_COMMON, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, intermediate_size=256),
    # Same order of size as tiny, spent on width or on depth (for studies of what learns sooner).
    "tiny-wide": dict(_COMMON, hidden_size=160, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=480),
    "tiny-deep": dict(_COMMON, hidden_size=96, num_hidden_layers=8, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=192),
    "small": dict(_COMMON, hidden_size=256, num_hidden_layers=6, num_attention_heads=8,
                  num_key_value_heads=4, intermediate_size=768),
    "base": dict(_COMMON, hidden_size=512, num_hidden_layers=8, num_attention_heads=8,
                 num_key_value_heads=4, intermediate_size=1536),
    # Qwen2.5-0.5B's shape with random weights: GPU speed and memory checks (benchmarks/gpu_check.sh).
    "random-0.5b": dict(_COMMON, hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                        num_key_value_heads=2, intermediate_size=4864),
}
MODES = ("frozen", "full", "lora")


@dataclass
class BackboneConfig:
    model_name: str = "tiny"  # a preset name, a hub id such as "Qwen/Qwen2.5-0.5B", or a folder
    mode: str = "full"  # "frozen", "full" or "lora"
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                     "up_proj", "down_proj")
    attn_implementation: str = "sdpa"
    positions: str = DEFAULT_POSITIONS  # "1d" (the token stream alone), "2d", "2d-mirror", "2d-paired" or "2d-match" (positions.py)
    init: str | Path | None = None  # every weight, as save_trainable wrote them from a full model

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise ValueError(f"positions {self.positions!r} is not one of {', '.join(POSITIONS)}")
        if self.mode not in MODES:
            raise ValueError(f"backbone mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.mode == "lora" and (self.lora_rank < 1 or not self.lora_targets):
            raise ValueError("lora mode needs lora_rank >= 1 and at least one target module")
        self.lora_targets = tuple(self.lora_targets)


def arc_token_ids(tokenizer) -> list[int]:
    """The pretrained tokenizer's id for each ARC token, in ARC token order."""
    ids = []
    for text in TOKEN_TEXT:
        got = tokenizer.encode(text, add_special_tokens=False)
        if len(got) != 1:
            raise ArcEfeError(f"the tokenizer has no single token for {text!r}: it becomes "
                              f"{len(got)} tokens {list(got)}")
        ids.append(int(got[0]))
    return ids


@torch.no_grad()
def cut_vocabulary(model: nn.Module, ids: list[int]) -> None:
    """Keep only the rows `ids` (in that order) of the input embedding and the output layer.

    The kept rows are the pretrained ones, so nothing the model knows about those tokens
    is lost. A model that ties its embeddings stays tied to the new embedding.
    """
    emb = model.get_input_embeddings()
    out = model.get_output_embeddings()
    index = torch.tensor(ids, dtype=torch.long, device=emb.weight.device)
    new_emb = nn.Embedding(len(ids), emb.embedding_dim, device=emb.weight.device,
                           dtype=emb.weight.dtype)
    new_emb.weight.copy_(emb.weight[index])
    model.set_input_embeddings(new_emb)
    if out is not None:
        w = out.weight
        new_out = nn.Linear(w.shape[1], len(ids), bias=getattr(out, "bias", None) is not None,
                            device=w.device, dtype=w.dtype)
        if getattr(model.config, "tie_word_embeddings", False):
            new_out.weight = new_emb.weight
        else:
            new_out.weight.copy_(w[index.to(w.device)])
        if new_out.bias is not None:
            new_out.bias.copy_(out.bias[index.to(w.device)])
        model.set_output_embeddings(new_out)
    model.config.vocab_size = len(ids)
    # Some model classes keep their own copy of the vocabulary size.
    for m in (model, getattr(model, "model", None)):
        if m is not None and hasattr(m, "vocab_size"):
            m.vocab_size = len(ids)


def _looks_like_path(name: str) -> bool:
    # A hub id is "owner/name"; anything else with a separator is meant as a folder.
    return (name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1
            or Path(name).exists())


def _offline() -> bool:
    """Offline mode as set now (huggingface_hub reads the variables only once, at import)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.is_offline_mode() or env.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host takes a connection, so an offline machine fails in seconds
    instead of after huggingface_hub's minute of retries. Behind a proxy we cannot tell."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _unknown(name: str, reason: str) -> ArcEfeError:
    return ArcEfeError(f"cannot load model {name!r}: {reason}. A model is a preset "
                       f"({', '.join(ARCHITECTURES)}), a local model folder, or a hub id such as "
                       "Qwen/Qwen2.5-0.5B (an offline machine cannot fetch hub ids: download "
                       "the model elsewhere and give its folder)")


def _load_pretrained(name: str, dtype: torch.dtype, attn: str) -> nn.Module:
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(name).expanduser()
    if folder.is_dir():
        source, hub = str(folder), False
    elif _looks_like_path(name):
        raise _unknown(name, "a file, not a model folder" if folder.exists() else "no such folder")
    elif "/" not in name:
        raise _unknown(name, "not a preset, and a hub id has the form owner/name")
    else:
        source, hub = name, True
    # transformers renamed torch_dtype to dtype in 4.56.
    old = tuple(int(x) for x in re.findall(r"\d+", transformers.__version__)[:2]) < (4, 56)
    kwargs = {"torch_dtype" if old else "dtype": dtype, "attn_implementation": attn}
    fetched = False
    try:
        try:
            # Local files first: no network, and no waiting on an offline machine. (transformers
            # 5 looks for a PEFT adapter on the hub even with local_files_only unless told again.)
            model = AutoModelForCausalLM.from_pretrained(
                source, local_files_only=True, adapter_kwargs={"local_files_only": True}, **kwargs)
            tok = AutoTokenizer.from_pretrained(source, local_files_only=True)
        except OSError:
            if not hub or _offline():
                raise
            if not _hub_reachable():
                raise _unknown(name, "not in the local cache, and the hub cannot be reached")
            fetched = True
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
            tok = AutoTokenizer.from_pretrained(source)
    except ArcEfeError:
        raise
    except Exception as e:  # transformers raises OSError, ValueError, KeyError, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        offline = hub and not fetched and isinstance(e, OSError)
        where = "not in the local cache, and offline mode is on" if offline else first
        raise _unknown(name, where) from e
    cut_vocabulary(model, arc_token_ids(tok))
    return model


def load_backbone(cfg: BackboneConfig, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """The model named by `cfg`, cut to the ARC vocabulary, set up for `cfg.mode`, on `device`.

    Weights are held in `dtype`. A preset is initialised from the global torch seed, so the
    caller seeds it.
    """
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if cfg.model_name in ARCHITECTURES:
        config = Qwen2Config(**ARCHITECTURES[cfg.model_name], attn_implementation=cfg.attn_implementation)
        model = Qwen2ForCausalLM(config).to(dtype=dtype)
    else:
        model = _load_pretrained(cfg.model_name, dtype, cfg.attn_implementation)
    if model.config._attn_implementation == "sdpa":  # sdpa, plus a fast path for packed rows
        from ..data.packing import register_attention

        model.set_attn_implementation(register_attention())
    # Special tokens in ARC ids, so generate() stops at END and pads with PAD, never with an
    # id of the old vocabulary.
    for c in (model.config, getattr(model, "generation_config", None)):
        if c is not None:
            c.bos_token_id, c.eos_token_id, c.pad_token_id = BOS, END, PAD
            c.use_cache = True
    # Grid positions: random like the other weights for a preset, zero for a pretrained model
    # (which then gives exactly the logits it gave without them until training moves them).
    attach(model, cfg.positions, zero_init=cfg.model_name not in ARCHITECTURES)
    if cfg.init is not None:  # trained weights (modelfolder.py), before LoRA wraps the model
        load_trainable(model, cfg.init)
    model.to(device)
    if cfg.mode == "frozen":
        for p in model.parameters():
            p.requires_grad_(False)
        model.get_output_embeddings().weight.requires_grad_(True)
    elif cfg.mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                          lora_dropout=cfg.lora_dropout, target_modules=list(cfg.lora_targets),
                          task_type="CAUSAL_LM")
        with warnings.catch_warnings():
            # peft 0.21 calls a method transformers 5 deprecates; nothing for our users to do.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing",
                                    category=FutureWarning)
            model = get_peft_model(model, lora)
        for p in head_parameters(model) + position_parameters(model):
            p.requires_grad_(True)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    return model


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The output layer's parameters (the shared embedding weight when tied)."""
    return list(model.get_output_embeddings().parameters())


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every other trainable parameter: all of the body (full), LoRA adapters (lora), or
    none (frozen). `model.parameters()` already yields a shared parameter once."""
    head = {id(p) for p in head_parameters(model)}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in head]


def _count(n: int) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            return f"{n / size:.2f}{suffix}"
    return str(n)


def trainable_summary(model: nn.Module) -> str:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    share = 100.0 * trainable / total if total else 0.0
    return f"{_count(total)} parameters, {_count(trainable)} trainable ({share:.1f}%)"


def is_peft(model: nn.Module) -> bool:
    """Whether `model` is a peft (LoRA) wrapper; False when peft is not installed."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def changeable_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Name -> tensor of the weights a checkpoint must hold: the trainable ones of a LoRA
    model (adapters and head), otherwise the whole state dict. Tied weights appear once,
    under their first name, as safetensors refuses tensors that share memory."""
    if is_peft(model):
        items = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    else:
        items = list(model.state_dict(keep_vars=True).items())
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in items:
        if id(t) not in seen:
            seen.add(id(t))
            out[name] = t
    return out


def save_trainable(model: nn.Module, path: str | Path, tensors: dict[str, torch.Tensor] | None = None) -> None:
    """`tensors`: the weights already gathered whole (sharding.full_state, under --fsdp)."""
    if tensors is None:
        tensors = {n: t.detach().to("cpu").contiguous() for n, t in changeable_weights(model).items()}
    meta = {"format": "arc_efe.backbone", "lora": str(is_peft(model))}
    atomic_write_bytes(path, st_save(tensors, metadata=meta))


@torch.no_grad()
def load_trainable(model: nn.Module, path: str | Path) -> None:
    """Copy the weights saved by `save_trainable` into `model`, which must have the same
    architecture and mode; checks every key and shape before changing anything."""
    path = Path(path)
    saved = read_safetensors(path, "checkpoint")
    expected = changeable_weights(model)
    missing = [n for n in expected if n not in saved]
    extra = [n for n in saved if n not in expected]
    if missing or extra:
        what = (f"{len(missing)} weights missing (e.g. {missing[0]})" if missing
                else f"{len(extra)} unexpected weights (e.g. {extra[0]})")
        raise ArcEfeError(f"{path}: {what}; was it saved from another model or mode?")
    for name, t in expected.items():
        if saved[name].shape != t.shape:
            raise ArcEfeError(f"{path}: {name} has shape {tuple(saved[name].shape)}, "
                              f"the model has {tuple(t.shape)}")
    from .sharding import is_sharded, shard_like

    for name, t in expected.items():  # a sharded weight (--fsdp) takes this rank's shard
        t.copy_(shard_like(saved[name], t) if is_sharded(t) else saved[name])

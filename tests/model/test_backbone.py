"""The backbone: ARC-only vocabulary, the three training modes, checkpoints, device choice.

Everything runs offline on the CPU: the "pretrained" models are tiny ones saved to a
temporary folder together with a tokenizer built with the `tokenizers` library.
"""

import contextlib
import time

import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import normalizers
from transformers import Qwen2Config, Qwen2ForCausalLM

from arc_efe.model.positions import embed
from arc_efe.data.tokens import VOCAB_SIZE
from arc_efe.errors import ArcEfeError
from arc_efe.model.backbone import (ARCHITECTURES, BackboneConfig, arc_token_ids, backbone_parameters,
                                    head_parameters, load_backbone, load_trainable, save_trainable,
                                    trainable_summary)
from arc_efe.model.device import autocast, default_dtype, resolve_device

from tiny_tokenizer import TOK_VOCAB, make_tokenizer

CPU = torch.device("cpu")
F32 = torch.float32


def tiny(mode: str = "full", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return load_backbone(BackboneConfig(mode=mode), CPU, F32)


def train_steps(model, steps: int = 3) -> None:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randint(0, VOCAB_SIZE, (2, 40), generator=gen)
        logits = model(inputs_embeds=embed(model, x)).logits  # as the Policy calls it: grid positions too
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB_SIZE),
                                                 x[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_tiny_preset_logits_cover_only_arc_tokens():
    model = tiny()
    x = torch.randint(0, VOCAB_SIZE, (2, 50))
    logits = model(input_ids=x).logits
    assert logits.shape == (2, 50, VOCAB_SIZE) == (2, 50, 16)
    assert model.config.vocab_size == 16 and model.config.use_cache


def test_preset_is_seeded_by_caller():
    a, b, c = tiny(seed=3), tiny(seed=3), tiny(seed=4)
    sa, sb, sc = snapshot(a), snapshot(b), snapshot(c)
    assert all(torch.equal(sa[n], sb[n]) for n in sa)
    assert not torch.equal(sa["lm_head.weight"], sc["lm_head.weight"])


def test_presets_share_the_arc_vocabulary():
    for kw in ARCHITECTURES.values():
        assert kw["vocab_size"] == VOCAB_SIZE and kw["tie_word_embeddings"] is False


@pytest.mark.parametrize("tied", [False, True])
def test_load_folder_keeps_pretrained_rows_of_arc_tokens(tmp_path, tied):
    torch.manual_seed(0)
    orig = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, intermediate_size=64, tie_word_embeddings=tied))
    orig.save_pretrained(tmp_path)
    tok = make_tokenizer()
    tok.save_pretrained(tmp_path)
    ids = arc_token_ids(tok)
    assert ids == [len(TOK_VOCAB) - 1 - i for i in range(16)]

    model = load_backbone(BackboneConfig(model_name=str(tmp_path)), CPU, F32)
    emb, out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert emb.shape == (16, 32) and out.shape == (16, 32)
    assert torch.equal(emb, orig.get_input_embeddings().weight[ids])
    assert torch.equal(out, orig.get_output_embeddings().weight[ids])
    assert (out is emb) == tied
    # The cut model computes what the original computes on the same tokens, restricted to ours.
    x = torch.randint(0, VOCAB_SIZE, (2, 20))
    with torch.no_grad():
        got = model(input_ids=x).logits
        want = orig(input_ids=torch.tensor(ids)[x]).logits[..., ids]
    assert got.shape[-1] == 16
    torch.testing.assert_close(got, want)


def test_arc_token_ids_rejects_text_that_is_two_tokens():
    tok = make_tokenizer(normalizers.Replace("^", "^^"))
    assert len(tok.encode("^", add_special_tokens=False)) == 2
    with pytest.raises(ArcEfeError, match=r"'\^'.*2 tokens"):
        arc_token_ids(tok)


def test_frozen_trains_only_the_head():
    model = tiny("frozen")
    before = snapshot(model)
    head = {id(p) for p in head_parameters(model)}
    train_steps(model)
    for n, p in model.named_parameters():
        if id(p) in head:
            assert not torch.equal(p, before[n]), n
        else:
            assert torch.equal(p, before[n]), n
    assert backbone_parameters(model) == []


def test_full_trains_everything():
    model = tiny("full")
    before = snapshot(model)
    train_steps(model)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(before)
    assert "lm_head.weight" in changed and "model.layers.0.self_attn.q_proj.weight" in changed


def test_lora_trains_adapters_head_and_positions_only():
    model = tiny("lora")
    before = snapshot(model)
    assert any("lora_B" in n for n in before)
    assert all(not p.any() for n, p in before.items() if "lora_B" in n)  # B starts at zero
    train_steps(model)
    for n, p in model.named_parameters():
        if "lora_A" in n or "lora_B" in n or n.endswith("lm_head.weight") or "arc_positions" in n:
            assert not torch.equal(p, before[n]), n
        else:
            assert torch.equal(p, before[n]), n


@pytest.mark.parametrize("mode", ["frozen", "full", "lora"])
def test_head_and_backbone_split_the_trainable_parameters(mode):
    model = tiny(mode)
    head = [id(p) for p in head_parameters(model)]
    body = [id(p) for p in backbone_parameters(model)]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(head) == 1 and head[0] == id(model.get_output_embeddings().weight)
    assert len(set(body)) == len(body) and not set(head) & set(body)
    assert set(head) | set(body) == trainable
    assert ("100.0%" in trainable_summary(model)) == (mode == "full")


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_save_load_trainable_round_trip(tmp_path, mode):
    model = tiny(mode)
    train_steps(model, 1)  # so lora_B is not zero
    saved = snapshot(model)
    path = tmp_path / "w.safetensors"
    save_trainable(model, path)
    keys = set(load_file(path))
    if mode == "lora":
        assert keys and all("lora_" in k or k.endswith("lm_head.weight") or ".arc_positions." in k
                            for k in keys)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(1.0)
    load_trainable(model, path)
    for n, p in model.named_parameters():
        assert torch.equal(p, saved[n]), n


def test_load_trainable_rejects_missing_key_and_other_mode(tmp_path):
    model = tiny("full")
    path = tmp_path / "w.safetensors"
    save_trainable(model, path)
    tensors = load_file(path)
    del tensors["model.norm.weight"]
    save_file(tensors, tmp_path / "cut.safetensors")
    with pytest.raises(ArcEfeError, match=r"cut\.safetensors.*missing"):
        load_trainable(model, tmp_path / "cut.safetensors")
    with pytest.raises(ArcEfeError, match=r"w\.safetensors"):
        load_trainable(tiny("lora"), path)
    with pytest.raises(ArcEfeError, match=r"nothing\.safetensors"):
        load_trainable(model, tmp_path / "nothing.safetensors")


def test_save_trainable_handles_tied_weights(tmp_path):
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**dict(ARCHITECTURES["tiny"], tie_word_embeddings=True)))
    model.lm_head.weight = model.model.embed_tokens.weight
    path = tmp_path / "tied.safetensors"
    save_trainable(model, path)
    with torch.no_grad():
        model.model.embed_tokens.weight.add_(1.0)
    load_trainable(model, path)
    assert model.lm_head.weight is model.model.embed_tokens.weight


@pytest.mark.parametrize("name", ["no-such-preset", "nobody/no-such-model-xyz",
                                  "./no/such/folder"])
def test_unknown_model_name_fails_fast_listing_presets(monkeypatch, name):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ArcEfeError) as err:
        load_backbone(BackboneConfig(model_name=name), CPU, F32)
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert "\n" not in msg and name in msg
    assert all(p in msg for p in ARCHITECTURES) and "folder" in msg and "hub id" in msg


def test_bad_mode_is_rejected():
    with pytest.raises(ValueError, match="frozen, full, lora"):
        BackboneConfig(mode="partial")


def test_resolve_device_on_cpu_machine():
    assert resolve_device("cpu") == CPU
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    assert resolve_device("auto") == CPU
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(ArcEfeError, match="--device cpu"):
            resolve_device(spec)
    with pytest.raises(ArcEfeError, match="unknown device"):
        resolve_device("tpu")


def test_dtype_and_autocast_on_cpu():
    assert default_dtype(CPU) == torch.float32
    assert isinstance(autocast(CPU, torch.float32), contextlib.nullcontext)
    with autocast(CPU, torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")

#!/usr/bin/env bash
# GPU check for a lent GPU machine (about 5 minutes on one H200): train a random Qwen2 of
# Qwen2.5-0.5B shape (`--model-name random-0.5b`) in bf16 with packed batches for a fixed number
# of steps, print tokens/s, MFU against the bf16 dense peak, peak GPU memory, then evaluate a
# few tasks with the trained run.
#
#   bash benchmarks/gpu_check.sh                 # PEAK_TFLOPS=989 (H100/H200 bf16 dense)
#   STEPS=40 PEAK_TFLOPS=312 bash benchmarks/gpu_check.sh    # e.g. an A100
set -euo pipefail
STEPS=${STEPS:-60}
PEAK_TFLOPS=${PEAK_TFLOPS:-989}
OUT=${OUT:-/tmp/arc_efe_gpu_check}
PY=${PY:-python}
DEVICE=${DEVICE:-cuda}   # DEVICE=cpu MODEL=tiny STEPS=8 only checks that the script runs
MODEL=${MODEL:-random-0.5b}
rm -rf "$OUT"
"$PY" - "$STEPS" "$PEAK_TFLOPS" "$OUT" "$DEVICE" "$MODEL" <<'PYEOF'
import sys, time, torch
from arc_efe.saved.checkpoint import save_checkpoint
from arc_efe.saved.config import TrainConfig
from arc_efe.training.run import setup
steps, peak, out, device, model = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
cfg = TrainConfig(data="arc-agi-1/training", model_name=model, device=device, epochs=1,
                  max_batches=steps, batch_size=16, max_len=2048, max_tokens=8192, agent_lr=1e-4,
                  output_dir=out, run_name="run", tensorboard=False, memory=False)
run = setup(cfg)
params = sum(p.numel() for p in run.policy.parameters())
print(f"dtype {run.dtype}, {params / 1e6:.0f}M parameters")
gpu = run.device.type == "cuda"
sync = torch.cuda.synchronize if gpu else (lambda: None)
if gpu:
    torch.cuda.reset_peak_memory_stats()
tokens = seconds = 0.0
for s in range(steps):
    mb = run.micro_batch(0, s)
    sync(); t0 = time.perf_counter()
    outcome = run.step(0, [mb])
    sync()
    if s >= 5:  # warm-up steps not counted
        tokens += outcome.tokens; seconds += time.perf_counter() - t0
    if s % 10 == 0:
        print(f"step {s}: loss {outcome.loss:.4f}", flush=True)
tok_s = tokens / seconds
mfu = 6 * params * tok_s / (peak * 1e12)  # 6N flops per token (forward + backward), attention left out
print(f"tokens/s {tok_s:.0f}  MFU {100 * mfu:.1f}% of {peak:.0f} TFLOPS  "
      f"peak memory {torch.cuda.max_memory_allocated() / 2**30 if gpu else 0:.1f} GiB")
run.pos.step, run.pos.batch = steps, steps
save_checkpoint(run.run_dir, run.policy.backbone, run.optimizer, run.scheduler, run.pos, cfg.to_dict())
PYEOF
"$PY" -m arc_efe evaluate --data arc-agi-1/evaluation --max-tasks 4 --checkpoint "$OUT/run" \
    --model-name "$MODEL" --device "$DEVICE" --views 2 --ttt-steps 0 --output-dir "$OUT/eval" --no-progress

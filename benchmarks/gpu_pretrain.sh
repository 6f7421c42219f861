#!/usr/bin/env bash
# The pretraining recipe (make pretrain) on a lent GPU with a larger preset, in a few minutes of
# H200 time; then the model's scores: in-context accuracy per family (no test-time training) and
# evaluate's GPU defaults on the 30 smallest ARC-AGI-1 and ARC-AGI-2 evaluation tasks. Prints
# tokens/s and MFU (6N flops per token against the bf16 dense peak) from the run's step log.
#
#   bash benchmarks/gpu_pretrain.sh                           # small preset, batch 32, ~5 min on an H200
#   MODEL=base BATCH=32 EPOCHS=4 BATCHES=1500 bash benchmarks/gpu_pretrain.sh
#   DEVICE=cpu MODEL=tiny BATCH=2 EPOCHS=1 BATCHES=4 TASKS=1 bash benchmarks/gpu_pretrain.sh   # checks the script
set -euo pipefail
MODEL=${MODEL:-small}
BATCH=${BATCH:-32}
EPOCHS=${EPOCHS:-4}
BATCHES=${BATCHES:-800}
TASKS=${TASKS:-30}
DEVICE=${DEVICE:-cuda}
PEAK_TFLOPS=${PEAK_TFLOPS:-989}
OUT=${OUT:-/tmp/arc_efe_gpu_pretrain}
PY=${PY:-python}
cd "$(dirname "$0")/.."
rm -rf "$OUT"
make pretrain PY="$PY" STAMP= PRETRAIN_ARGS="--device $DEVICE --model-name $MODEL --batch-size $BATCH \
    --epochs $EPOCHS --max-batches $BATCHES --save-every-steps 0 --output-dir $OUT --run-name run --no-tensorboard"
"$PY" - "$OUT/run" "$PEAK_TFLOPS" <<'PYEOF'
import json, statistics, sys
from pathlib import Path
from arc_efe.inference.evaluate import load_policy
run, peak = Path(sys.argv[1]), float(sys.argv[2])
rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
steps = [r for r in rows if r.get("kind") == "step"]
steps = steps[5:] or steps  # warm-up steps left out
epochs = [r for r in rows if r.get("kind") == "epoch"]
policy, *_ = load_policy(run, "unused", __import__("torch").device("cpu"))
params = sum(p.numel() for p in policy.parameters())
tok_s = statistics.median(r["tokens_per_s"] for r in steps)
print(f"{params / 1e6:.1f}M parameters, {len(steps)} steps timed; median tokens/s {tok_s:.0f}; "
      f"MFU {100 * 6 * params * tok_s / (peak * 1e12):.2f}% of {peak:.0f} TFLOPS")
print("in-context accuracy by epoch:", ", ".join(f"{100 * (e.get('icl_accuracy') or 0):.1f}%" for e in epochs))
PYEOF
"$PY" benchmarks/in_context.py --checkpoint "$OUT/run"
for DATA in arc-agi-1/evaluation arc-agi-2/evaluation; do
    "$PY" benchmarks/evaluate_smallest.py --data "$DATA" --tasks "$TASKS" --device "$DEVICE" -- \
        --checkpoint "$OUT/run" | tail -1
done

#!/usr/bin/env bash
# GPU check of recipes/transfer_vgg19.py at 224x224, in at most 8 minutes.
#
# For the torch and tensorflow backends, each in float32 and with --mixed-precision
# (mixed_float16 on a GPU): a short real run of the recipe at 224x224 on the bundled digits
# (nothing downloaded: VGG19 trained on digits 0-4 as the source task, transferred to digits
# 5-9, next to a from-scratch VGG19), then the training-step benchmark
# (benchmarks/bench_transfer_step.py: recipe vs bare fit vs a plain PyTorch loop) at 224x224.
# Every command runs under `timeout` and the whole script under an 8-minute deadline, so a
# slow compile shows up as "timeout" in the table instead of overrunning.
#
# Usage (from anywhere):  benchmarks/gpu_transfer.sh
# Output: benchmarks/results/gpu_transfer-<UTC date>.md (the table, the exact commands, the
# machine) and benchmarks/results/gpu_transfer-<UTC date>-logs/ (the full logs).
# Without a GPU it stops at once (set GPU_TRANSFER_FORCE=1 to run anyway: slow on a CPU).
set -uo pipefail
cd "$(dirname "$0")/.."

BUDGET_S=${GPU_TRANSFER_BUDGET_S:-470}   # < 8 minutes, including start-up and the report
RUN_TIMEOUT_S=${GPU_TRANSFER_RUN_TIMEOUT_S:-80}
BENCH_TIMEOUT_S=${GPU_TRANSFER_BENCH_TIMEOUT_S:-60}
PY=${PYTHON:-python}
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1

if ! nvidia-smi -L >/dev/null 2>&1 && [ "${GPU_TRANSFER_FORCE:-0}" != 1 ]; then
  echo "gpu_transfer.sh: no NVIDIA GPU found (nvidia-smi -L failed); this check is meant for a" >&2
  echo "GPU machine. Set GPU_TRANSFER_FORCE=1 to run it on a CPU anyway (slow)." >&2
  exit 2
fi

stamp=$(date -u +%Y%m%d-%H%M%S)
results=benchmarks/results
logs="$results/gpu_transfer-$stamp-logs"
report="$results/gpu_transfer-$stamp.md"
work=$(mktemp -d)
mkdir -p "$logs"
start=$SECONDS

left() { echo $((BUDGET_S - (SECONDS - start))); }

# The recipe at 224x224: batch 25 and --limit 125 keep every batch full (no retracing for a
# ragged last batch): source 125 images x 2 epochs, target 10 labelled images per class,
# 125 validation and 125 test images, 2 + 2 epochs, from-scratch VGG19 with the same budget.
RECIPE_ARGS=(--data digits --image-size 224 --head gap --batch-size 25 --limit 125
             --train-per-class 10 --source-epochs 2 --head-epochs 2 --fine-tune-epochs 2
             --histogram-freq 1 --verbose 2)
BENCH_ARGS=(--image-size 224 --batch-size 32 --steps 8 --val-batches 2 --epochs 3 --repeats 2)

declare -a rows=()
run_recipe() {  # backend, precision flag ("" or --mixed-precision)
  local backend=$1 mp=$2 name out t0 rc budget
  name="recipe-$backend${mp:+-mixed}"
  out="$work/$name"
  budget=$(left)
  if [ "$budget" -lt 30 ]; then rows+=("| $name | skipped (8-minute budget spent) |"); return; fi
  [ "$budget" -gt "$RUN_TIMEOUT_S" ] && budget=$RUN_TIMEOUT_S
  echo "== $name (timeout ${budget}s)"
  t0=$SECONDS
  timeout "$budget" "$PY" recipes/transfer_vgg19.py --backend "$backend" $mp "${RECIPE_ARGS[@]}" \
    --out "$out" >"$logs/$name.log" 2>&1
  rc=$?
  rows+=("$("$PY" - "$out" "$name" "$rc" "$((SECONDS - t0))" <<'EOF'
import glob, json, sys
out, name, rc, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
runs = sorted(glob.glob(f"{out}/transfer_vgg19-*/metrics.json"))
status = {0: "ok", 124: "timeout", 3: "non-finite loss"}.get(rc, f"exit {rc}")
if not runs:
    print(f"| {name} | {status} | {secs} | | | | | | | |")
    sys.exit()
m = json.load(open(runs[-1]))
s, v = m["summary"], m["variants"]
t = v.get("transfer", {}); sc = v.get("scratch", {})
ft = [p for p in t.get("phases", []) if p["phase"] == "fine-tune"]
pct = lambda x: "" if x is None else f"{100 * x:.1f}"
print(f"| {name} | {status} | {secs} | {s['device']} | {s['dtype_policy']} | "
      f"{pct(m['source_task']['val_top1'])} | "
      f"{pct(t.get('final', {}).get('test_top1'))} | {pct(sc.get('final', {}).get('test_top1'))} | "
      f"{(ft[0]['images_per_second'] or 0) if ft else 0:.0f} | {s['wall_seconds']:.0f} |")
EOF
)")
}

run_bench() {  # backend, precision flag
  local backend=$1 mp=$2 name budget rc
  name="bench-$backend${mp:+-mixed}"
  budget=$(left)
  if [ "$budget" -lt 30 ]; then echo "(skipped $name: budget spent)" >"$logs/$name.log"; return; fi
  [ "$budget" -gt "$BENCH_TIMEOUT_S" ] && budget=$BENCH_TIMEOUT_S
  echo "== $name (timeout ${budget}s)"
  timeout "$budget" "$PY" benchmarks/bench_transfer_step.py --backend "$backend" $mp \
    "${BENCH_ARGS[@]}" >"$logs/$name.log" 2>&1
  rc=$?
  [ $rc -eq 124 ] && echo "(timeout after ${budget}s)" >>"$logs/$name.log"
}

for backend in torch tensorflow; do
  run_recipe "$backend" ""
  run_recipe "$backend" "--mixed-precision"
done
for backend in torch tensorflow; do
  run_bench "$backend" ""
  run_bench "$backend" "--mixed-precision"
done

{
  echo "# GPU check of the VGG19 transfer recipe at 224x224"
  echo
  echo "- date (UTC): $(date -u '+%Y-%m-%d %H:%M')"
  echo "- machine: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1); $(nproc) CPU cores"
  echo "- versions: $("$PY" -c 'import keras, torch, tensorflow as tf; print(f"keras {keras.__version__}, torch {torch.__version__}, tensorflow {tf.__version__}")' 2>/dev/null)"
  echo "- command: \`benchmarks/gpu_transfer.sh\` (total $((SECONDS - start)) s); each recipe run:"
  echo "  \`python recipes/transfer_vgg19.py --backend B [--mixed-precision] ${RECIPE_ARGS[*]}\`"
  echo "- data: bundled digits resized to 224x224 (source task digits 0-4, target digits 5-9 with"
  echo "  10 labelled images per class); tiny epochs: the accuracies only show the runs work,"
  echo "  the speed columns are what this check measures."
  echo
  echo "| run | status | seconds (process) | device | dtype policy | source val top-1 % | transfer test top-1 % | scratch test top-1 % | fine-tune img/s | recipe wall s |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for r in "${rows[@]}"; do echo "$r"; done
  echo
  echo "## Training step at 224x224 (benchmarks/bench_transfer_step.py ${BENCH_ARGS[*]})"
  for f in "$logs"/bench-*.log; do
    [ -e "$f" ] || continue
    echo
    echo "### $(basename "$f" .log)"
    echo
    echo '```'
    grep -v -e '^repeat ' -e 'absl' -e 'WARNING' "$f" | tail -n 14
    echo '```'
  done
} >"$report"

rm -rf "$work"
echo "wrote $report (logs in $logs) in $((SECONDS - start)) s"

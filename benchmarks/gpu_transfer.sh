#!/usr/bin/env bash
# GPU check of recipes/transfer_vgg19.py at 224x224, in at most 8 minutes.
#
# For each Keras backend installed on the machine (torch, tensorflow, jax; GPU_TRANSFER_BACKENDS
# picks), in float32 and with --mixed-precision (mixed_float16 on a GPU): a short real run of the
# recipe at 224x224 on the bundled digits (nothing downloaded: VGG19 trained on digits 0-4 as the
# source task, transferred to digits 5-9, next to a from-scratch VGG19), then the training-step
# benchmark (benchmarks/bench_transfer_step.py: recipe vs bare fit vs a plain PyTorch loop) at
# 224x224 with an epoch the size of Flowers-102's (1,024 training and 1,024 validation images).
# A backend that is not installed gets a "not installed" row instead of a failure. Every command
# runs under `timeout` and the whole script under an 8-minute deadline, so a slow compile shows up
# as "timeout" in the table instead of overrunning; what the budget cannot fit is "skipped".
#
# Usage (from anywhere):  benchmarks/gpu_transfer.sh
# Output: benchmarks/results/gpu_transfer-<UTC date>.md (the table, the exact commands, the
# machine) and benchmarks/results/gpu_transfer-<UTC date>-logs/ (the full logs).
# Without a GPU it stops at once (set GPU_TRANSFER_FORCE=1 to run anyway: slow on a CPU; with
# GPU_TRANSFER_IMAGE_SIZE=32 and GPU_TRANSFER_BENCH_STEPS=2 a CPU dry run of the script's
# mechanics takes a few minutes).
set -uo pipefail
cd "$(dirname "$0")/.."

BUDGET_S=${GPU_TRANSFER_BUDGET_S:-470}   # < 8 minutes, including start-up and the report
RUN_TIMEOUT_S=${GPU_TRANSFER_RUN_TIMEOUT_S:-100}
BENCH_TIMEOUT_S=${GPU_TRANSFER_BENCH_TIMEOUT_S:-90}
BACKENDS=${GPU_TRANSFER_BACKENDS:-torch tensorflow jax}
SIZE=${GPU_TRANSFER_IMAGE_SIZE:-224}
BENCH_STEPS=${GPU_TRANSFER_BENCH_STEPS:-32}
PY=${PYTHON:-python}
# jax: allocate GPU memory as needed (the benchmark also runs a PyTorch loop in the process).
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false

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

# The recipe: batch 25 and --limit 125 keep every batch full (no retracing for a ragged last
# batch): source 125 images x 2 epochs, target 10 labelled images per class, 125 validation and
# 125 test images, 2 + 2 epochs, from-scratch VGG19 with the same budget.
RECIPE_ARGS=(--data digits --image-size "$SIZE" --head gap --batch-size 25 --limit 125
             --train-per-class 10 --source-epochs 2 --head-epochs 2 --fine-tune-epochs 2
             --histogram-freq 1 --verbose 2)
BENCH_ARGS=(--image-size "$SIZE" --batch-size 32 --steps "$BENCH_STEPS"
            --val-batches "$BENCH_STEPS" --epochs 3 --repeats 2)

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
  # The plain PyTorch loop is timed in the torch process only (one framework per process).
  local variants=recipe,bare_fit
  local -a profile=()
  [ "$backend" = torch ] && variants=recipe,bare_fit,torch_loop
  # Keras's torch fit was CPU-bound on the H200 (2.1 s per epoch against 1.35 s for the
  # PyTorch loop): after the ratios are printed, one more bare fit runs under cProfile.
  [ "$backend" = torch ] && [ -z "$mp" ] && \
    profile=(--profile bare_fit --profile-out "$logs/profile-$name.prof")
  timeout "$budget" "$PY" benchmarks/bench_transfer_step.py --backend "$backend" $mp \
    "${BENCH_ARGS[@]}" --variants "$variants" "${profile[@]}" >"$logs/$name.log" 2>&1
  rc=$?
  [ $rc -eq 124 ] && echo "(timeout after ${budget}s)" >>"$logs/$name.log"
}

probe() {  # backend: prints the device the backend computes on, or fails
  KERAS_BACKEND=$1 timeout 120 "$PY" -c 'import keras_recipes.backend.device as d, keras
print(d.device_description(), "| keras", keras.__version__)' 2>"$logs/probe-$1.log"
}

declare -a devices=()
for backend in $BACKENDS; do
  if ! dev=$(probe "$backend"); then
    rows+=("| recipe-$backend | not installed here: \`KERAS_BACKEND=$backend\` does not import (see probe-$backend.log) |")
    continue
  fi
  devices+=("$backend: $dev;")
  run_recipe "$backend" ""
  run_recipe "$backend" "--mixed-precision"
  run_bench "$backend" ""
  run_bench "$backend" "--mixed-precision"
done

{
  echo "# GPU check of the VGG19 transfer recipe at ${SIZE}x${SIZE}"
  echo
  echo "- date (UTC): $(date -u '+%Y-%m-%d %H:%M')"
  echo "- machine: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1); $(nproc) CPU cores"
  echo "- backends (device the backend computes on, keras version): ${devices[*]:-none}"
  echo "- versions: $("$PY" -c 'import importlib.metadata as m
print(", ".join(f"{p} {m.version(p)}" for p in ("keras", "torch", "tensorflow", "jax", "jaxlib") if any(d.metadata["Name"] == p for d in m.distributions())))' 2>/dev/null)"
  echo "- command: \`benchmarks/gpu_transfer.sh\` (total $((SECONDS - start)) s); each recipe run:"
  echo "  \`python recipes/transfer_vgg19.py --backend B [--mixed-precision] ${RECIPE_ARGS[*]}\`"
  echo "- data: bundled digits resized to ${SIZE}x${SIZE} (source task digits 0-4, target digits 5-9 with"
  echo "  10 labelled images per class); tiny epochs: the accuracies only show the runs work,"
  echo "  the speed columns are what this check measures."
  echo
  echo "| run | status | seconds (process) | device | dtype policy | source val top-1 % | transfer test top-1 % | scratch test top-1 % | fine-tune img/s | recipe wall s |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for r in "${rows[@]}"; do echo "$r"; done
  echo
  echo "## Training step at ${SIZE}x${SIZE} (benchmarks/bench_transfer_step.py ${BENCH_ARGS[*]})"
  for backend in $BACKENDS; do
    for f in "$logs/bench-$backend.log" "$logs/bench-$backend-mixed.log"; do
      [ -e "$f" ] || continue
      echo
      echo "### $(basename "$f" .log)"
      echo
      echo '```'
      if grep -q '^recipe / bare_fit' "$f"; then  # finished: the table and the ratios
        sed '/^profile of /,$d' "$f" |
          grep -v -e '^repeat ' -e 'absl' -e 'WARNING' -e 'cuda' -e 'I0000' -e 'E0000' | tail -n 16
      else  # stopped: the epochs it timed
        grep -e '^repeat ' -e 'timeout' -e 'Error' "$f" | tail -n 12
      fi
      echo '```'
      if grep -q '^profile of ' "$f"; then  # where the bare fit's host time goes
        echo
        echo '```'
        sed -n '/^profile of /,$p' "$f" | grep -v '^ *$' | head -n 48
        echo '```'
      fi
    done
  done
} >"$report"

rm -rf "$work"
echo "wrote $report (logs in $logs) in $((SECONDS - start)) s"

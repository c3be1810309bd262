#!/usr/bin/env bash
# GPU smoke check (at most ~5 minutes): every workflow with --device cuda, beside the same run on the
# CPU, printing wall seconds and the speed-up. Run on a machine with CUDA:
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Stages: collect, train-sae, eval-sae, features, circuits (discrete-sae and eap), unlearn, and a
# short MoE-X training. Each stage runs with --device cpu and then --device cuda; a stage that fails
# on CUDA prints its one-line error and the script continues. The last lines are a Markdown table
# for the `scale` section of benchmarks/README.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-$(mktemp -d /tmp/interp-gpu.XXXXXX)}
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH=$PWD OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} TQDM_DISABLE=1 INTERP_HOME="$OUT/home"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: CUDA is not available here; nothing to compare" >&2
  exit 2
fi
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"

HOOK=blocks.2.hook_resid_post
declare -A T
stage() {  # stage NAME DEVICE ARGS...
  local name=$1 dev=$2; shift 2
  local t0=$(date +%s.%N)
  if "$PY" -m interp --device "$dev" "$@" > "$OUT/$name.$dev.log" 2>&1; then
    T[$name.$dev]=$(echo "$(date +%s.%N) - $t0" | bc)
  else
    T[$name.$dev]=fail
    echo "  $name on $dev failed: $(grep '^error:' "$OUT/$name.$dev.log" | tail -1)"
  fi
  printf '%-14s %-5s %s s\n' "$name" "$dev" "${T[$name.$dev]}"
}

python_task() {  # a custom JSONL circuits task (IOI pairs) so both devices read the same file
  "$PY" - "$OUT/task.jsonl" <<'EOF'
import json, sys
names = ["Mary", "John", "Anna", "Paul", "Laura", "Peter", "Susan", "David"]
with open(sys.argv[1], "w") as f:
    for i in range(24):
        a, b, c = names[i % 8], names[(i + 3) % 8], names[(i + 5) % 8]
        f.write(json.dumps({"positive": f"When {a} and {b} went to the store, {b} gave a drink to",
                            "negative": f"When {a} and {b} went to the store, {c} gave a drink to",
                            "answer": f" {a}", "wrong_answer": f" {b}"}) + "\n")
EOF
}
python_task

for dev in cpu cuda; do
  stage collect "$dev" collect --hooks "$HOOK" --tokens 262144 --out "$OUT/acts.$dev" --overwrite
  stage train-sae "$dev" train-sae --hook "$HOOK" --arch topk --d-sae 2048 --k 32 --tokens 1000000 --act-tokens 262144 \
        --acts-dir "$OUT/sae_acts.$dev" --out "$OUT/sae.$dev" --checkpoint-every 0
  stage eval-sae "$dev" eval-sae "$OUT/sae.$dev" --tokens 16384 --json
  stage features "$dev" features --sae "$OUT/sae.$dev" --tokens 65536
  stage circ-dsae "$dev" circuits --task "$OUT/task.jsonl" --method discrete-sae --reference none
  stage circ-eap "$dev" circuits --task "$OUT/task.jsonl" --method eap --reference none
  stage unlearn "$dev" unlearn --sae "$OUT/sae.$dev" --concept colors --method clamp --n-features 10
  stage moex "$dev" moex train --arch moex --steps 60 --out "$OUT/moex.$dev" --overwrite
done

echo
echo "| stage | CPU s | CUDA s | speed-up |"
echo "|---|---|---|---|"
for name in collect train-sae eval-sae features circ-dsae circ-eap unlearn moex; do
  c=${T[$name.cpu]:-n/a} g=${T[$name.cuda]:-n/a}
  if [[ $c =~ ^[0-9.]+$ && $g =~ ^[0-9.]+$ ]]; then s=$(echo "scale=2; $c / $g" | bc); else s=n/a; fi
  printf '| %s | %s | %s | %s |\n' "$name" "${c:0:6}" "${g:0:6}" "$s"
done

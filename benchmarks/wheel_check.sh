#!/usr/bin/env bash
# Build a wheel of this checkout, install it (not editable) into a fresh venv, and run the CLI and
# the dashboard from another directory: proves `app/` and the shipped models are in the wheel.
#
#   bash benchmarks/wheel_check.sh [DEPS_SITE_PACKAGES]
#
# To avoid a multi-GB dependency install, the fresh venv gets interp alone (`--no-deps
# --no-build-isolation`) and borrows the dependencies of an existing environment through
# PYTHONPATH (default: this checkout's .venv). A PYTHONPATH entry does not run that environment's
# .pth files, so its editable install of interp is invisible and only the wheel's copy is imported
# (the script checks where `interp` and `app` come from).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DEPS=${1:-$("$REPO/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')}
WORK=$(mktemp -d /tmp/interp-wheel.XXXXXX)
trap 'kill "${APP_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

python3 -m venv "$WORK/venv"
"$REPO/.venv/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/dist" "$REPO"
"$WORK/venv/bin/python" -m pip install -q --no-deps "$WORK"/dist/interp-*.whl
export PYTHONPATH="$DEPS" OMP_NUM_THREADS=1 INTERP_HOME="$WORK/home"
cd "$WORK"  # not the source tree
PY="$WORK/venv/bin/python"
"$PY" -c 'import interp, app, pathlib; p = pathlib.Path(interp.__file__).parent; assert "site-packages" in str(p), p; print("interp from", p); print("app from", list(app.__path__))'
"$WORK/venv/bin/interp" --help | head -3
"$WORK/venv/bin/interp" demo --prompt "The color of a ripe banana is" --top 2
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$WORK/venv/bin/interp" app --port "$PORT" > "$WORK/app.log" 2>&1 &
APP_PID=$!
for _ in $(seq 1 120); do
  if curl -fs "http://127.0.0.1:$PORT/_stcore/health" 2>/dev/null | grep -q ok; then break; fi
  sleep 1
done
echo "health: $(curl -fs "http://127.0.0.1:$PORT/_stcore/health")"
kill -TERM "$APP_PID"
wait "$APP_PID" || true
if "$PY" -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', $PORT))" 2>/dev/null; then
  echo "port $PORT free after SIGTERM"
else
  echo "port $PORT still in use after SIGTERM"; exit 1
fi
echo "wheel check: ok"

#!/usr/bin/env bash
# Build a SEPARATE virtual environment for the auto-circuit peer cross-check.
# auto-circuit 1.0.1 imports only with transformer-lens 2.x, so it cannot live in the main venv.
#   usage: benchmarks/circuits/autocircuit_env.sh [VENV_DIR]   (default /tmp/ac-venv)
set -euo pipefail
VENV="${1:-${AC_VENV:-/tmp/ac-venv}}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q torch==2.13.0
"$VENV/bin/pip" install -q transformer-lens==2.18.0 auto-circuit==1.0.1 attrs "datasets<4" "pyarrow<18" safetensors
"$VENV/bin/python" -c "import auto_circuit, transformer_lens; print('auto-circuit ok, transformer-lens', transformer_lens.__version__ if hasattr(transformer_lens, '__version__') else '2.x')"
echo "$VENV"

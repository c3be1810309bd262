#!/usr/bin/env bash
# Build a SEPARATE virtual environment for the circuit-tracer peer check (benchmarks/graphs/peer.py).
# circuit-tracer 0.5.0 pins transformers <= 4.57.3, while TransformerLens 3 (the main venv) needs
# transformers >= 5.9, so it cannot live in the main venv (the same arrangement as auto-circuit).
#   usage: benchmarks/graphs/circuit_tracer_env.sh [VENV_DIR]   (default $INTERP_HOME/venvs/circuit-tracer)
set -euo pipefail
VENV="${1:-${CT_VENV:-${INTERP_HOME:-$HOME/.cache/interp}/venvs/circuit-tracer}}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q torch==2.13.0            # the CPU build first, so nothing below pulls a CUDA one
"$VENV/bin/pip" install -q "circuit-tracer==0.5.0" "transformers>=4.56,<=4.57.3" "transformer-lens>=2.16,<3" safetensors "torch==2.13.0" "datasets<4" "pyarrow<18"  # TL 2.x pulls numpy<2; newer pyarrow needs numpy 2
"$VENV/bin/python" -c "import circuit_tracer, transformer_lens, transformers, torch; print('circuit-tracer ok; transformers', transformers.__version__, '; torch', torch.__version__)"
echo "$VENV"

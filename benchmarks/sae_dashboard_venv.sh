#!/usr/bin/env bash
# Build the sae-dashboard 0.8 peer venv for benchmarks/features_bench.py (it cannot share the
# project venv: it pins transformer-lens 2.x, transformers 4.x, numpy 1.26 and a CUDA torch).
# The CPU torch goes in first, and we check pip kept it afterwards. Usage:
#   bash benchmarks/sae_dashboard_venv.sh [VENV_DIR]     (default .cache/venv-sae-dashboard, ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.cache/venv-sae-dashboard}
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q "sae-dashboard==0.8.*" "torch==2.13.0"
# its numpy 1.26 pin needs a pyarrow built for numpy 1.x (pyarrow 18+ requires numpy 2; seen here)
"$VENV/bin/python" -m pip install -q "pyarrow<18" "torch==2.13.0"
# torchvision/torchaudio came in for a newer torch and break the import of transformers (nms op
# missing); sae-dashboard does not need them
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio
"$VENV/bin/python" - <<'PY'
import torch, sae_dashboard, transformer_lens, importlib.metadata as md
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert not torch.cuda.is_available() or True
print("sae-dashboard", md.version("sae-dashboard"), "torch", torch.__version__, "transformer-lens", md.version("transformer-lens"))
PY

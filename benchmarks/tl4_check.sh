#!/usr/bin/env bash
# TransformerLens 4 readiness: interp's model layer (loading, hooks, capture, intervene, collection)
# on transformer-lens 4.x, in a venv of its own WITHOUT SAELens (SAELens 6.54 still pins
# transformer-lens < 4, so the project venv stays on 3.9).
#
#   benchmarks/tl4_check.sh [VENV_DIR]      (default $INTERP_HOME/venvs/tl4; created if missing)
#
# Installs torch 2.13 (the CPU wheel), transformer-lens>=4,<5, pytest and interp's other
# dependencies except sae-lens, transformer-lens, streamlit and altair (read from pyproject.toml),
# then runs the model-layer tests below with the checkout on PYTHONPATH. Prints the versions and
# pytest's summary; exits with pytest's status. The result is quoted in README.md ("Use your own model").
set -euo pipefail
VENV="${1:-${INTERP_HOME:-$HOME/.cache/interp}/venvs/tl4}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.13.0
fi
"$VENV/bin/pip" install -q "transformer-lens>=4,<5" pytest $("$VENV/bin/python" - "$ROOT/pyproject.toml" <<'PY'
import re, sys, tomllib
deps = tomllib.loads(open(sys.argv[1]).read())["project"]["dependencies"]
skip = {"sae-lens", "transformer-lens", "streamlit", "altair", "torch"}
print(" ".join(d.replace(" ", "") for d in deps if re.split(r"[<>=!~ ]", d)[0] not in skip))
PY
)
"$VENV/bin/python" -c "import importlib.util, transformer_lens, torch, transformers; \
assert importlib.util.find_spec('sae_lens') is None, 'sae_lens must not be installed here'; \
print('transformer-lens', transformer_lens.__version__ if hasattr(transformer_lens, '__version__') else '?', \
'| torch', torch.__version__, '| transformers', transformers.__version__)"
"$VENV/bin/pip" show transformer-lens | grep -i '^version'
cd "$ROOT"
export PYTHONPATH="$ROOT" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# loading (shipped, local HF dirs of every family, bad input), hooks, capture, intervene, collection
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_runtime.py \
  "tests/test_families.py::test_logits_equal_hugging_face" \
  tests/test_foundation.py -k "not demo and not help and not parser and not cli_unlearn and not model_card"

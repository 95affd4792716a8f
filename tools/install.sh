#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install everything:
# torch, detectron2 (tools/install_detectron2.sh), timm, ... and `dfr` itself (editable).
# Idempotent: a stamp keyed on requirements.txt + setup.py makes a second run a no-op.
# Override the interpreter with PYTHON=python3.x, the location with VENV=path.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
stamp="$VENV/.dfr-installed"
key="$(cat requirements.txt setup.py tools/install_detectron2.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
    exit 0
fi
start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip setuptools wheel 2> >(grep -v "is ignored: it is neither" >&2)
echo "[install] pip install -r requirements.txt (torch is large the first time)"
"$PY" -m pip install --quiet -r requirements.txt 2> >(grep -v "is ignored: it is neither" >&2)
tools/install_detectron2.sh "$PY"
"$PY" -m pip install --quiet --no-deps --no-build-isolation -e .
"$PY" -c "import torch, detectron2, timm, dfr; print('[install] torch', torch.__version__, '| detectron2', detectron2.__version__, '| timm', timm.__version__)"
echo "$key" > "$stamp"
echo "[install] done in $(( $(date +%s) - start )) s"

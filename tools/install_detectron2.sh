#!/usr/bin/env bash
# Install detectron2's pure-Python parts without a compiler or internet beyond the package index.
#
# detectron2 is not published on PyPI under its own name. The PyPI package `sal-detectron2`
# is a detectron2 0.6-era build for CPython 3.10; we download its wheel, delete the compiled
# extension (detectron2/_C*.so: ROIAlign, deformable conv, NMS... none of which DFR uses),
# re-tag it py3-none-any and install that. config/engine/launch/checkpoint/data/evaluation and
# the registries are pure Python and work unchanged.
#
# Users with internet and a CUDA toolchain should prefer the official build:
#     pip install 'git+https://github.com/facebookresearch/detectron2.git'
#
# Usage: tools/install_detectron2.sh [PYTHON]   (default: python3 on PATH)
# Idempotent: exits at once if `import detectron2` already works in PYTHON.
set -euo pipefail
PY="${1:-${PYTHON:-python3}}"
D2_PKG="sal-detectron2==0.7.2"

if "$PY" -c "import detectron2, detectron2.engine, detectron2.evaluation" 2>/dev/null; then
    echo "[install_detectron2] detectron2 already importable in $PY: nothing to do"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "[install_detectron2] downloading $D2_PKG wheel"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.10 \
    "$D2_PKG" -d "$work/dl"
"$PY" -m pip install --quiet wheel
whl="$(ls "$work"/dl/*.whl)"
"$PY" -m wheel unpack --dest "$work/unpacked" "$whl"
src="$(ls -d "$work"/unpacked/*/)"
# The compiled extension is built for CPython 3.10 only; drop it (and its RECORD line).
find "$src" -name '_C*.so' -print -delete
sed -i '/_C\..*\.so,/d' "$src"/*.dist-info/RECORD
mkdir -p "$work/packed"
"$PY" -m wheel pack --dest-dir "$work/packed" "$src" >/dev/null
"$PY" -m wheel tags --remove --python-tag py3 --abi-tag none --platform-tag any \
    "$(ls "$work"/packed/*.whl)" >/dev/null
pure="$(ls "$work"/packed/*py3-none-any.whl)"
echo "[install_detectron2] installing $(basename "$pure")"
# --no-deps: its dependencies are pinned in requirements.txt (it misses fvcore/iopath).
"$PY" -m pip install --quiet --no-deps "$pure"
"$PY" -c "import detectron2; print('[install_detectron2] detectron2', detectron2.__version__, 'at', detectron2.__file__)"

#!/usr/bin/env bash
# The GPU benchmark of docs/ (tools/benchmark_step.py): the paper config (Swin-B, d = 128, 512²,
# batch 2) in fp32 / bf16 / fp16 + GradScaler, with mmseg 1.2.2's own Swin-UperNet beside it, in
# one call. Writes to $OUT (default /tmp/out): benchmark.json, benchmark.md (the table), env.txt
# (GPU, driver, versions, commit), log.txt. Arguments are passed on to benchmark_step.py
# (e.g. `--device cpu --tiny` for a dry run, `--iters 50`, config overrides KEY VALUE ...).
#
# Online (a GPU machine with a package index):
#   bash tools/run_benchmark_on_device.sh
#     tools/install.sh installs the pinned requirements into .venv; a second venv ($MMSEG_VENV,
#     default /tmp/mmseg_venv) gets torch==2.14.1 torchvision==0.29.1, then mmengine
#     mmcv-lite==2.1.0 mmsegmentation==1.2.2 timm==1.0.15 ftfy regex.
# Offline (a GPU machine without a package index whose python3 holds torch), two steps:
#   bash tools/run_benchmark_on_device.sh --prepare      # here: builds the bundle .devbench/
#   cd .devbench && bash tools/run_benchmark_on_device.sh
#     The same bundle serves tools/run_ablation_on_device.sh (training runs on the GPU machine).
#     The bundle (git-ignored via .git/info/exclude, carried to the machine): the code of the
#     commit HEAD (git archive: the measured code is the recorded commit), .devsite/
#     (detectron2, fvcore, iopath, yacs, omegaconf, antlr4, termcolor, timm copied from .venv),
#     .whl/dfr (pycocotools for CPython $DEVICE_PY, default 3.12) and .whl/mmseg (mmengine,
#     mmcv-lite 2.1.0, mmsegmentation 1.2.2 and their pure-Python needs). Both sides use the
#     machine's torch; mmseg runs in its own interpreter process with only .whl/mmseg added
#     (a wrapper script given as --mmseg-python), as tools/check_mmseg_parity.py does.
# Local dry run of the offline path on CPU:
#   DEVICE_PY=3.11 bash tools/run_benchmark_on_device.sh --prepare
#   cd .devbench && PY=../.venv/bin/python OUT=/tmp/benchout \
#       bash tools/run_benchmark_on_device.sh --device cpu --tiny
set -uo pipefail
MMSEG_PKGS="mmengine==0.10.7 mmcv-lite==2.1.0 mmsegmentation==1.2.2 addict yapf platformdirs
prettytable wcwidth ftfy termcolor rich markdown-it-py mdurl pygments"
if [ "${1:-}" = --prepare ]; then
    set -e
    cd "$(dirname "$0")/.."
    rm -rf .devbench && mkdir -p .devbench/.devsite .devbench/.whl/dfr .devbench/.whl/mmseg
    git archive HEAD | tar -x -C .devbench
    git rev-parse --short HEAD > .devbench/COMMIT
    sp=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    for p in detectron2 fvcore iopath yacs omegaconf antlr4 termcolor timm; do
        cp -r "$sp/$p" .devbench/.devsite/
    done
    find .devbench -name __pycache__ -prune -exec rm -rf {} +
    # The machine's numpy may be 2.x, where detectron2's sem_seg PNG loader (np.array(...,
    # copy=False)) raises: patched in the copy, so the bundle also evaluates (training runs).
    sed -i 's/np.array(Image.open(f), copy=copy, dtype=dtype)/np.array(Image.open(f), dtype=dtype)/' \
        .devbench/.devsite/detectron2/evaluation/sem_seg_evaluation.py
    # The synthetic-pretrained backbone, when built (make pretrain), for the training runs of
    # tools/run_ablation_on_device.sh from the same bundle.
    if ls pretrained/swin_tiny_synthetic_pretrain.* >/dev/null 2>&1; then
        mkdir -p .devbench/pretrained && cp pretrained/swin_tiny_synthetic_pretrain.* .devbench/pretrained/
    fi
    dl() { .venv/bin/python -m pip download -q --no-deps --only-binary=:all: "$@" \
        2> >(grep -v "is ignored: it is neither" >&2); }
    dl --python-version "${DEVICE_PY:-3.12}" --implementation cp \
        --platform manylinux2014_x86_64 -d .devbench/.whl/dfr pycocotools==2.0.8
    # shellcheck disable=SC2086
    dl --python-version "${DEVICE_PY:-3.12}" --implementation cp --platform manylinux2014_x86_64 \
        --platform manylinux_2_17_x86_64 -d .devbench/.whl/mmseg $MMSEG_PKGS
    mkdir -p .git/info
    grep -qx '/.devbench/' .git/info/exclude 2>/dev/null || echo '/.devbench/' >> .git/info/exclude
    du -sh .devbench
    exit 0
fi

T0=$(date +%s)
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
el() { echo $(( $(date +%s) - T0 )); }
export PYTHONWARNINGS=ignore PYTHONUNBUFFERED=1
if [ -d .devsite ]; then  # offline bundle
    PY=${PY:-python3}
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/dfr_site .whl/dfr/*.whl \
        || exit 1
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/mmseg_site \
        .whl/mmseg/*.whl || exit 1
    export PYTHONPATH=/tmp/dfr_site:$PWD/.devsite:$PWD/projects/DFR
    DFR_COMMIT=$(cat COMMIT)
    export DFR_COMMIT
    MMSEG_PY=/tmp/mmseg_python
    py_abs=$(command -v "$PY") && case $py_abs in /*) ;; *) py_abs=$PWD/$py_abs ;; esac
    printf '#!/bin/sh\nexport PYTHONPATH=/tmp/mmseg_site\nexec %s "$@"\n' "$py_abs" > "$MMSEG_PY"
    chmod +x "$MMSEG_PY"
else  # online: pinned requirements + a separate mmseg venv
    tools/install.sh || exit 1
    PY=${PY:-.venv/bin/python}
    MMSEG_VENV=${MMSEG_VENV:-/tmp/mmseg_venv}
    if [ ! -x "$MMSEG_VENV/bin/python" ]; then
        python3 -m venv "$MMSEG_VENV" || exit 1
        "$MMSEG_VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 || exit 1
        "$MMSEG_VENV/bin/pip" install -q mmengine mmcv-lite==2.1.0 mmsegmentation==1.2.2 \
            timm==1.0.15 ftfy regex || exit 1
    fi
    MMSEG_PY=$MMSEG_VENV/bin/python
fi
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
        || echo "no nvidia-smi"
    echo "commit ${DFR_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null)}"
    "$PY" -c "import sys, torch, numpy, detectron2, timm; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(), 'numpy', numpy.__version__, 'detectron2', detectron2.__version__, 'timm', timm.__version__)"
    (cd tools && "$MMSEG_PY" -c "import check_mmseg_parity as p; p._install_mmcv_ops_stand_in(); import mmseg, mmcv, mmengine, torch; print('mmseg side: torch', torch.__version__, 'mmseg', mmseg.__version__, 'mmcv', mmcv.__version__, 'mmengine', mmengine.__version__)")
} 2>&1 | tee "$OUT/env.txt"
echo "[bench] setup done at $(el) s"
timeout "${LIMIT:-520}" "$PY" tools/benchmark_step.py --mmseg-python "$MMSEG_PY" \
    --json "$OUT/benchmark.json" "$@" > "$OUT/benchmark.md"
rc=$?
cat "$OUT/benchmark.md"
echo "[bench] benchmark_step rc=$rc at $(el) s"
exit $rc

#!/usr/bin/env bash
# The feature-branch ablation (docs/ablation_feature_branch/) on a GPU machine without a package
# index (e.g. one H100, 16 cores; bare Python 3.12 + torch): every (init, variant, seed) run of
# tools/run_synthetic_ablation.py at once, JOBS processes sharing the GPU, MAX_ITER fitted to a
# wall-clock limit BUDGET in seconds (equal for all runs).
# Two steps:
#   make pretrain && bash tools/run_ablation_on_device.sh --prepare   # here: the bundle .devbench/
#   cd .devbench && BUDGET=540 JOBS=14 bash tools/run_ablation_on_device.sh [KEY VALUE ...]
# The bundle is tools/run_benchmark_on_device.sh's (one for both): the code of HEAD, .devsite/
# (detectron2 with its sem_seg PNG loader patched for the machine's numpy 2, fvcore, iopath,
# yacs, omegaconf, antlr4, termcolor, timm), .whl/dfr/ (pycocotools for CPython 3.12) and
# pretrained/ (tools/pretrain_synthetic_backbone.py's checkpoint).
# Writes to $OUT: log.txt, results.md, results.json, runs.tar.gz (metrics + logs of every run).
set -uo pipefail
if [ "${1:-}" = --prepare ]; then
    cd "$(dirname "$0")/.."
    if [ ! -f pretrained/swin_tiny_synthetic_pretrain.pth ]; then
        echo "pretrained/swin_tiny_synthetic_pretrain.pth is missing: run 'make pretrain' first" >&2
        exit 1
    fi
    exec bash tools/run_benchmark_on_device.sh --prepare
fi
T0=$(date +%s)
BUDGET=${BUDGET:-540}
JOBS=${JOBS:-14}
SEEDS=${SEEDS:-"0 1 2 3 4"}
DEVICE=${DEVICE:-cuda}         # local dry run: DEVICE=cpu WHL=0 CAL_ITERS=5 with SOLVER.MAX_ITER 2
WHL=${WHL:-1}
CAL_ITERS=${CAL_ITERS:-40}
VARIANTS=${VARIANTS:-}         # default: the runner's
CONFIG=projects/DFR/configs/synthetic/dfr_swin_tiny_synthetic_cpu.yaml
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
el() { echo $(( $(date +%s) - T0 )); }
if [ "$WHL" = 1 ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/dfr/*.whl \
        || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD/.devsite:$PWD/projects/DFR
export DETECTRON2_DATASETS=/tmp/datasets PYTHONWARNINGS=ignore PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -c "import sys, torch, numpy, cv2, skimage, detectron2, timm, dfr; print(sys.version.split()[0], 'torch', torch.__version__, torch.cuda.is_available(), 'numpy', numpy.__version__, 'cv2', cv2.__version__, 'skimage', skimage.__version__, 'timm', timm.__version__)" || exit 1
# The frozen benchmark, generated here; its pixel hash is compared with the CPU machine's.
python3 - <<'PY' || exit 1
import hashlib, glob, os
import numpy as np
from PIL import Image
from dfr.data.synthetic import ensure_synthetic
root = ensure_synthetic()
h = hashlib.sha256()
for f in sorted(glob.glob(os.path.join(root, "*", "*", "*.png"))):
    h.update(np.asarray(Image.open(f)).tobytes())
print("[device] benchmark pixel sha256", h.hexdigest()[:16])
PY
echo "[device] setup done at $(el) s"
# CUDA MPS lets the runs' small kernels share the GPU; without it they time-slice.
MPS=off
if [ "$DEVICE" = cuda ] && [ -z "${NO_MPS:-}" ] && command -v nvidia-cuda-mps-control >/dev/null \
        && nvidia-cuda-mps-control -d; then
    if timeout 40 python3 -c "import torch; torch.ones(1).cuda().sum().item()"; then MPS=on
    else echo quit | nvidia-cuda-mps-control; fi
fi
echo "[device] MPS $MPS at $(el) s"
LEFT=$(( BUDGET - $(el) - 60 ))  # 60 s: mechanism step + archive
python3 tools/run_synthetic_ablation.py --device "$DEVICE" --jobs "$JOBS" --seeds $SEEDS \
    ${VARIANTS:+--variants $VARIANTS} --output /tmp/ablation --publish "$OUT" \
    --fit-budget "$LEFT" --deadline "$LEFT" --min-iter "${MIN_ITER:-600}" \
    --drop-order full_sigrel full_both full_scribble --calibration-iters "$CAL_ITERS" "$@"
rc=$?
echo "[device] ablation rc=$rc at $(el) s (MPS $MPS)"
# Mechanism: on final full-DFR models, the diagnostics on 16 training crops and each loss's
# gradient norm at the shared fused map (tools/measure_feature_scale.py --grads).
pids=()
for init in random pretrained; do for v in full full_detach; do for s in 0 1; do
    w=/tmp/ablation/$init/$v/seed$s/model_final.pth
    [ -f "$w" ] || continue
    ov=""; [ $v = full_detach ] && ov="MODEL.DFR.FEAT_DETACH_FUSED True"
    timeout 90 python3 tools/measure_feature_scale.py --config-file "$CONFIG" --dataset \
        synthetic_scribble_train --n 16 --grads --json /tmp/mech_${init}_${v}_$s.json \
        MODEL.WEIGHTS "$w" $ov >/dev/null 2>&1 &
    pids+=($!)
done; done; done
[ ${#pids[@]} -gt 0 ] && wait "${pids[@]}"  # (a bare `wait` would also wait for the tee)
python3 -c "import json,glob; print(json.dumps({f.split('mech_')[1][:-5]: json.load(open(f)) for f in sorted(glob.glob('/tmp/mech_*.json'))}, indent=1))" > "$OUT/mechanism.json"
echo "[device] mechanism.json written at $(el) s"
cd /tmp/ablation && find . \( -name metrics.json -o -name stdout.log -o -name '*.json' \) \
    -not -name sem_seg_predictions.json | tar czf "$OUT/runs.tar.gz" -T - \
    && echo "[device] runs.tar.gz written"
[ "$MPS" = on ] && echo quit | nvidia-cuda-mps-control
exit $rc

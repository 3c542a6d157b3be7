#!/usr/bin/env bash
# The GPU check: one command for a machine with an NVIDIA GPU. Its steps' time limits add up
# to 8 min 45 s, so it ends within 9 minutes whatever happens.
#
#   bash benchmarks/gpu_check.sh            # figures in gpu_check.txt ($OUT/gpu_check.txt if set)
#
# 1. installs the project from its own files with TensorFlow's CUDA wheels (".[dev,gpu]")
#    into .venv-gpu (needs the package index);
# 2. shows the GPUs (nvidia-smi) and what TensorFlow and train.mixed_precision: auto make of them;
# 3. runs the unit test tier with the GPU visible;
# 4. times the train step (benchmarks/train_step.py: float32, jit_compile, mixed_bfloat16,
#    the straightforward baseline) at batch 64 and 256 on one GPU, and under the mirrored
#    strategy where there are several;
# 5. times the paper's residual networks at 128 px (model.architecture: resnet, widths 64),
#    the figure the README's CelebA-128 time estimate needs.
# Every step has a time limit, and a failed step is reported and the next one runs.
set -uo pipefail
cd "$(dirname "$0")/.."
report="${OUT:-.}/gpu_check.txt"
exec > >(tee "$report") 2>&1
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=1

step() {  # step LIMIT_SECONDS TITLE COMMAND...: one timed, bounded step of the check
  local limit=$1 title=$2
  shift 2
  echo "== $title"
  local started=$SECONDS
  timeout "$limit" "$@"
  local status=$?
  echo "== $title: exit $status after $((SECONDS - started)) s"
}

echo "gpu_check on $(hostname), $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null)"
python3 -m venv .venv-gpu && . .venv-gpu/bin/activate || exit 1
step 120 "install" python -m pip install --quiet -e ".[dev,gpu]" || true
if ! python -c "import tensorflow" 2>/dev/null; then
  echo "TensorFlow did not install: this check needs pip to reach the package index"
  exit 1
fi
step 15 "GPUs" nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv
step 45 "TensorFlow's view" python - <<'PY'
import tensorflow as tf
from sagan.config import Config
from sagan.hardware import detect_hardware
from sagan.training.settings import resolve_settings
print("TensorFlow", tf.__version__, "GPUs:", tf.config.list_physical_devices("GPU"))
print("compute capabilities:", detect_hardware().gpu_capabilities)
settings = resolve_settings(Config())  # the defaults: mixed_precision and jit_compile auto
print("train.mixed_precision auto ->", settings.precision.reason)
print("train.jit_compile auto ->", settings.xla.reason)
PY
# two pytest workers (addopts -n 2) share the GPU: each takes memory as it needs it
TF_FORCE_GPU_ALLOW_GROWTH=true step 150 "unit tests, GPU visible" python -m pytest -q -x -p no:cacheprovider
for batch in 64 256; do
  step 45 "train step, batch $batch, one GPU" \
    python -m benchmarks.train_step --batch "$batch" --steps 5 --rounds 5
done
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$gpus" -gt 1 ]; then
  step 45 "train step, batch 256, mirrored over $gpus GPUs" \
    python -m benchmarks.train_step --batch 256 --steps 5 --rounds 5 --strategy mirrored
else
  echo "== one GPU: no mirrored run"
fi
step 60 "train step, resnet at 128 px, batch 64, one GPU" \
  python -m benchmarks.train_step --image-size 128 --batch 64 --steps 3 --rounds 3 \
  --only "sagan resnet width=64" "sagan mixed_bfloat16 resnet width=64"
echo "done in $SECONDS s; figures in $report"

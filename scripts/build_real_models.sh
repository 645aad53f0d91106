#!/usr/bin/env bash
# Builds perfsage's real-model evaluation set: models that no perfsage search space produced,
# labelled by Vela on ethos-u55-128, ethos-u55-256, ethos-u65-256 and ethos-u65-512. They are for
# evaluation only: never train on them.
#
#   .venv-tf/      a separate virtual environment with TensorFlow (CPU), Keras 3 and Keras 2
#                  (tf-keras), used only to convert models: TensorFlow is no dependency of
#                  perfsage or of its tests
#   .venv-torch/   the same for PyTorch: torch, torchvision and ai-edge-torch/litert-torch (PT2E
#                  quantisation and TFLite export); --no-torch leaves it out
#   datasets/real/models/*.tflite   the 149 models of scripts/real_models.py's catalogue
#                  (`real_models.py list`):
#     keras-app    112 Keras application architectures built with weights=None (random weights:
#                  nothing is downloaded) and converted to full-integer int8 by TFLiteConverter:
#                  MobileNet V1/V2/V3 small+large (several widths, minimalistic variants, 96-224),
#                  EfficientNet-B0..B3, EfficientNetV2-B0..B3, RegNetX/Y 200-800MF, ResNet-50/101,
#                  ResNet-50 V2, Xception, InceptionV3, NASNetMobile, DenseNet-121, ConvNeXt-tiny
#                  (its layer norms stay float islands, which Vela places on the CPU)
#     keras-audio  18 audio and recurrent models defined in scripts/real_models_keras.py (LSTM, GRU
#                  and CRNN keyword spotting, conv1d keyword spotting, RNNoise-style and conv1d
#                  denoisers, streaming TCN and GRU models), each as full-integer int8 and as 16x8
#                  (int16 activations, int8 weights)
#     torch        19 torchvision architectures with random weights (ResNet, MobileNet V2/V3,
#                  EfficientNet-B0, SqueezeNet, ShuffleNet V2, RegNet, MNASNet), NCHW as PyTorch
#                  exports them, int8 by PT2E quantisation, exported by litert-torch (which
#                  ai-edge-torch, a shim, installs; scripts/real_models_torch.py)
#                  All calibrated on seeded random inputs.
#   datasets/real/conversion.jsonl            per model: options, seed, framework versions, seconds
#   datasets/real/conversion-failures.jsonl   per model that failed to convert: the error
#   datasets/real-models.parquet/   those models plus the full-integer int8 models of
#                                   $PERFSAGE_DATA/models, labelled with `perfsage dataset label`
#                                   (space "real", name = file stem); a model Vela fails on is an
#                                   error row
#
# Times measured on a 2-core machine shared with other jobs: installing TensorFlow about 8 min,
# PyTorch with litert-torch about 20 min (6.6 GB); converting 15-55 s a Keras application model,
# 10-60 s an audio model, 55-165 s a PyTorch model; Vela about 3 s a MobileNet-sized model for
# all four targets together.
#
# Every step resumes: models already converted are not converted again (nor those that failed,
# unless --retry-failed), and the labelling job skips the files the dataset already holds. Float
# models of the shared data are skipped (Vela compiles quantised models only), as are models Vela
# already compiled; the script says which.
#
# Usage: scripts/build_real_models.sh [--seed S] [--workers W] [--timeout SECONDS] [--data DIR]
#                                     [--no-torch] [--retry-failed]
# Run in the background:  nohup nice -n 19 scripts/build_real_models.sh > /tmp/real_models.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."

SEED=0
WORKERS=1
TIMEOUT=3600
DATA="${PERFSAGE_DATA:-../shared/data}"
TORCH=1
RETRY=()
TF_VERSION="${TF_VERSION:-2.21.0}"
# torchvision beside torch: on x86_64 with Python 3.11 this machine kind has both on disk.
TORCH_VERSION="${TORCH_VERSION:-2.14.1}"
TORCHVISION_VERSION="${TORCHVISION_VERSION:-0.29.1}"
AI_EDGE_TORCH_VERSION="${AI_EDGE_TORCH_VERSION:-0.7.2}"
TARGETS=(ethos-u55-128 ethos-u55-256 ethos-u65-256 ethos-u65-512)
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) SEED="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --data) DATA="$2"; shift 2 ;;
    --no-torch) TORCH=0; shift ;;
    --retry-failed) RETRY=(--retry-failed); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_real_models.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-.venv/bin/python}"
MODELS=datasets/real/models
DATASET=datasets/real-models.parquet
stamp() { echo "[$(date '+%F %T')] $*"; }
quiet_pip() {
  # $1: the environment; the rest: pip's arguments. Drops pip's notes about package index
  # folders this machine lacks.
  local venv="$1"; shift
  "$venv/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 |
    { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
new_venv() {
  local base_python
  base_python=$("$PYTHON" -c 'import sys; print(sys._base_executable)')
  "$base_python" -m venv "$1"
  echo '*' > "$1/.gitignore"  # keeps the environment out of git without touching .gitignore
}
started=$(date +%s)

stamp "1/5 TensorFlow $TF_VERSION (CPU) and tf-keras in .venv-tf"
if .venv-tf/bin/python -c "import tensorflow, tf_keras" 2>/dev/null; then
  echo ".venv-tf already has TensorFlow $(.venv-tf/bin/python -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null)"
else
  t0=$(date +%s)
  [ -x .venv-tf/bin/python ] || new_venv .venv-tf
  # tensorflow-cpu is TensorFlow without the CUDA libraries; plain tensorflow where it is missing.
  quiet_pip .venv-tf install "tensorflow-cpu==$TF_VERSION" || quiet_pip .venv-tf install "tensorflow==$TF_VERSION"
  # Keras 2, for the audio models: the converter fuses its LSTM layer into one operator.
  quiet_pip .venv-tf install "tf-keras==$TF_VERSION"
  echo "installed TensorFlow in $(( $(date +%s) - t0 )) s"
fi

if [ "$TORCH" = 1 ]; then
  stamp "2/5 torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION, ai-edge-torch $AI_EDGE_TORCH_VERSION in .venv-torch"
  if .venv-torch/bin/python -c "import torchvision, ai_edge_torch" 2>/dev/null; then
    echo ".venv-torch already has them"
  else
    t0=$(date +%s)
    [ -x .venv-torch/bin/python ] || new_venv .venv-torch
    quiet_pip .venv-torch install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
    quiet_pip .venv-torch install "ai-edge-torch==$AI_EDGE_TORCH_VERSION" "torch==$TORCH_VERSION" \
      "torchvision==$TORCHVISION_VERSION"
    echo "installed PyTorch and ai-edge-torch in $(( $(date +%s) - t0 )) s"
  fi
else
  stamp "2/5 --no-torch: no PyTorch models"
fi

stamp "3/5 converting the catalogue models -> $MODELS"
.venv-tf/bin/python scripts/real_models.py convert --out "$MODELS" --seed "$SEED" \
  --framework keras-app keras-audio "${RETRY[@]}"
if [ "$TORCH" = 1 ]; then
  .venv-torch/bin/python scripts/real_models.py convert --out "$MODELS" --seed "$SEED" \
    --framework torch "${RETRY[@]}"
fi

stamp "4/5 checking that every model loads with perfsage and holds its scheme's tensor types"
# A model with unexpected tensor types is still labelled: Vela decides what it compiles.
"$PYTHON" scripts/real_models.py check "$MODELS" || echo "(labelling those models all the same)"
shared=()
if [ -d "$DATA/models" ]; then
  mapfile -t shared < <("$PYTHON" scripts/real_models.py shared-int8 "$DATA/models")
  echo "${#shared[@]} full-integer int8 models from $DATA/models"
else
  echo "no $DATA/models (set PERFSAGE_DATA or --data): labelling the converted models only"
fi

stamp "5/5 labelling on ${TARGETS[*]}, with per-operator labels -> $DATASET"
"$PYTHON" -m perfsage dataset label "$MODELS" "${shared[@]}" --space real \
  "${TARGETS[@]/#/--target=}" --per-operator --workers "$WORKERS" --timeout "$TIMEOUT" --out "$DATASET" --no-progress
"$PYTHON" -m perfsage dataset info "$DATASET"
stamp "done in $(( $(date +%s) - started )) s"

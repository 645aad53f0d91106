#!/usr/bin/env bash
# Builds perfsage's real-model evaluation set: models that no perfsage search space produced,
# labelled by Vela on ethos-u55-256 and ethos-u65-512.
#
#   .venv-tf/                          a separate virtual environment with TensorFlow (CPU), used
#                                      only to convert models: TensorFlow is no dependency of
#                                      perfsage or of its tests
#   datasets/real/models/*.tflite      68 Keras application architectures (MobileNet V1/V2/V3
#                                      small+large, EfficientNet-B0, ResNet-50, NASNetMobile,
#                                      DenseNet-121) at several widths and input sizes, built with
#                                      weights=None (random weights: nothing is downloaded) and
#                                      converted to full-integer int8 with TFLiteConverter,
#                                      calibrated on seeded random inputs (scripts/real_models.py)
#   datasets/real/conversion.jsonl     per model: options, seed, TensorFlow version, seconds
#   datasets/real-models.parquet/      those models plus the full-integer int8 models of
#                                      $PERFSAGE_DATA/models, labelled with
#                                      `perfsage dataset label` (space "real", name = file stem)
#
# Every step resumes: models already converted are not converted again, and the labelling job
# skips the files the dataset already holds. Float models of the shared data are skipped (Vela
# compiles int8 models only), as are models Vela already compiled; the script says which.
#
# Usage: scripts/build_real_models.sh [--seed S] [--workers W] [--timeout SECONDS] [--data DIR]
# Run in the background:  nohup scripts/build_real_models.sh > /tmp/real_models.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."

SEED=0
WORKERS=1
TIMEOUT=3600
DATA="${PERFSAGE_DATA:-../shared/data}"
TF_VERSION="${TF_VERSION:-2.21.0}"
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) SEED="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --data) DATA="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_real_models.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-.venv/bin/python}"
MODELS=datasets/real/models
DATASET=datasets/real-models.parquet
stamp() { echo "[$(date '+%F %T')] $*"; }
quiet_pip() {
  # Drop pip's notes about package index folders this machine lacks.
  .venv-tf/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1 |
    { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
started=$(date +%s)

stamp "1/4 TensorFlow $TF_VERSION (CPU) in .venv-tf"
if .venv-tf/bin/python -c "import tensorflow" 2>/dev/null; then
  echo ".venv-tf already has TensorFlow $(.venv-tf/bin/python -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null)"
else
  t0=$(date +%s)
  base_python=$("$PYTHON" -c 'import sys; print(sys._base_executable)')
  "$base_python" -m venv .venv-tf
  echo '*' > .venv-tf/.gitignore  # keeps the environment out of git without touching .gitignore
  # tensorflow-cpu is TensorFlow without the CUDA libraries; plain tensorflow where it is missing.
  quiet_pip install "tensorflow-cpu==$TF_VERSION" || quiet_pip install "tensorflow==$TF_VERSION"
  echo "installed TensorFlow in $(( $(date +%s) - t0 )) s"
fi

stamp "2/4 converting the Keras application models -> $MODELS"
.venv-tf/bin/python scripts/real_models.py convert --out "$MODELS" --seed "$SEED"

stamp "3/4 checking that every model loads with perfsage and is int8 throughout"
"$PYTHON" scripts/real_models.py check "$MODELS"
shared=()
if [ -d "$DATA/models" ]; then
  mapfile -t shared < <("$PYTHON" scripts/real_models.py shared-int8 "$DATA/models")
  echo "${#shared[@]} full-integer int8 models from $DATA/models"
else
  echo "no $DATA/models (set PERFSAGE_DATA or --data): labelling the converted models only"
fi

stamp "4/4 labelling on ethos-u55-256 and ethos-u65-512 -> $DATASET"
"$PYTHON" -m perfsage dataset label "$MODELS" "${shared[@]}" --space real \
  --target ethos-u55-256 --target ethos-u65-512 --workers "$WORKERS" --timeout "$TIMEOUT" --out "$DATASET"
"$PYTHON" -m perfsage dataset info "$DATASET"
stamp "done in $(( $(date +%s) - started )) s"

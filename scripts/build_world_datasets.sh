#!/usr/bin/env bash
# Builds the per-operator training data (issue "Training data that spans the TFLite world") into
# datasets/ at the repository root (gitignored), resumably, on all four Vela configurations
# (ethos-u55-128, ethos-u55-256, ethos-u65-256, ethos-u65-512) with per-operator labels
# (`perfsage dataset build --per-operator`: Vela's cycles, MACs, bytes per memory, latency, energy
# and placement of every operator, summing to the model's labels):
#
#   datasets/world-ethos-u.parquet/   int8: the operator zoo (ZOO_N models, default 40,000, seed S),
#                                     the spaces beyond the paper's (transformer, autoencoder,
#                                     mobile_v3, cnn_families, recurrent_audio: OTHER_N each, default
#                                     2,000) and a second zoo draw (ZOO2_N, default 12,000, seed S+1)
#                                     that brings the ops only some tensors fit (MIRROR_PAD,
#                                     EXPAND_DIMS) past 500 models: 62,000 new int8 models, mostly zoo
#                                     (a zoo model labels about 10x faster than a whole architecture,
#                                     and prices more operator shapes); motifs (MOTIFS_N, default
#                                     8,000, int8: the blocks real models repeat, one to four in a
#                                     row, each at its own sizes); the same spaces' first MIXED_N
#                                     samples each (default 6,000) with weights drawn as `--weights
#                                     mixed` draws them (a third uniform: the rows already stored;
#                                     a third trained-like normal or laplace; a third pruned to
#                                     30-95% zeros), whose Vela weight compression the uniform
#                                     draws never show; then 16x8 (int16 activations,
#                                     int8 weights, as audio models are quantised): X16_N (default
#                                     3,000) each of op_zoo and recurrent_audio; float sections
#                                     (`--float-sections mixed`: runs of layers left in float32 inside
#                                     the int8 model, as converters leave what they do not quantize)
#                                     in the first FLOAT_N samples (default 1,000) of op_zoo, motifs,
#                                     cnn_families, mobile_v3, transformer, recurrent_audio,
#                                     image_classification and kws (a third as drawn: the rows already
#                                     stored); affine layers (`--affine mixed`: input normalisation
#                                     and unfolded batch norms, elementwise layers with constant
#                                     operands, as most real Keras models carry them) in the first
#                                     AFFINE_N samples (default 1,000) of op_zoo, motifs,
#                                     cnn_families, mobile_v3, image_classification, kws, detection
#                                     and autoencoder; depthwise stems (`--stems mixed`: a conv2d on a
#                                     one-channel input written as the depthwise conv2d with depth
#                                     multiplier = filters that converters write, in half of the
#                                     specs that have one: every kws spec, a few of the others) in
#                                     the first STEMS_N samples (default 3,000) of kws, cnn_families
#                                     and op_zoo; trained weights (`--weights trained`: normal,
#                                     laplace or heavy-tailed student_t values, a quarter pruned,
#                                     dense layers quantised per tensor in half, as trained and
#                                     converted models carry them) in the first TRAINED_ZOO_N
#                                     samples (default 2,000) of op_zoo and motifs, the first
#                                     TRAINED_N (default 300) of autoencoder, transformer,
#                                     recurrent_audio, kws, image_classification, mobile_v3 and
#                                     cnn_families (whole architectures label ten times slower),
#                                     and TRAINED_N each in 16x8 of op_zoo and recurrent_audio; flat
#                                     inputs (`--flat-inputs mixed`: inputs of rank 3 or more declared
#                                     as flat vectors with a RESHAPE after them, as converters write
#                                     Keras models whose input is one; with trained weights and
#                                     depthwise stems, as such models come) in half of the first
#                                     FLAT_ZOO_N samples (default 1,000) of op_zoo and motifs and the
#                                     first FLAT_N (default 300) of kws, recurrent_audio,
#                                     image_classification, cnn_families, mobile_v3 and transformer;
#                                     and the 21,000 models
#                                     of the four paper spaces (the same seeds, so the same ids, as
#                                     scripts/build_datasets.sh), labelled again with per-operator
#                                     labels: one dataset, so that training and leave-one-space-out
#                                     see every space
#   datasets/compact/world-ethos-u.parquet  a compact copy (spec + seed + labels, zstd 19)
#
# Kill it at any moment and run it again: each step skips the models already stored. A model
# that Vela refuses or crashes on is stored as an error row; the job goes on.
#
# A space's first n samples do not depend on n, so a larger --other-n later only adds models.
#
# Usage: scripts/build_world_datasets.sh [--zoo-n N] [--zoo2-n N] [--other-n N] [--motifs-n N] [--mixed-n N]
#                                        [--x16-n N] [--float-n N] [--affine-n N] [--stems-n N] [--trained-zoo-n N]
#                                        [--trained-n N] [--flat-zoo-n N] [--flat-n N]
#                                        [--paper-n-per-space N]
#                                        [--workers W] [--seed S] [--out DIR]
# Run in the background:  nohup nice -n 10 scripts/build_world_datasets.sh > world.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."

ZOO_N=40000
ZOO2_N=12000
OTHER_N=2000
MOTIFS_N=8000
MIXED_N=6000
X16_N=3000
FLOAT_N=1000
AFFINE_N=1000
STEMS_N=3000
TRAINED_ZOO_N=2000
TRAINED_N=300
FLAT_ZOO_N=1000
FLAT_N=300
PAPER_N=5250
WORKERS=0
SEED=0
OUT=datasets
while [ $# -gt 0 ]; do
  case "$1" in
    --zoo-n) ZOO_N="$2"; shift 2 ;;
    --zoo2-n) ZOO2_N="$2"; shift 2 ;;
    --other-n) OTHER_N="$2"; shift 2 ;;
    --motifs-n) MOTIFS_N="$2"; shift 2 ;;
    --mixed-n) MIXED_N="$2"; shift 2 ;;
    --x16-n) X16_N="$2"; shift 2 ;;
    --float-n) FLOAT_N="$2"; shift 2 ;;
    --affine-n) AFFINE_N="$2"; shift 2 ;;
    --stems-n) STEMS_N="$2"; shift 2 ;;
    --trained-zoo-n) TRAINED_ZOO_N="$2"; shift 2 ;;
    --trained-n) TRAINED_N="$2"; shift 2 ;;
    --flat-zoo-n) FLAT_ZOO_N="$2"; shift 2 ;;
    --flat-n) FLAT_N="$2"; shift 2 ;;
    --paper-n-per-space) PAPER_N="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_world_datasets.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
perfsage() { "$PYTHON" -m perfsage "$@"; }
TARGETS=(--target ethos-u55-128 --target ethos-u55-256 --target ethos-u65-256 --target ethos-u65-512)
mkdir -p "$OUT/compact"
started=$(date +%s)
stamp() { echo "[$(date '+%F %T')] $*"; }

stamp "1/3 operator zoo ($ZOO_N) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space op_zoo --n "$ZOO_N" --seed "$SEED" --dtype int8 "${TARGETS[@]}" --per-operator \
  --workers "$WORKERS" --out "$OUT/world-ethos-u.parquet"
stamp "   transformer, autoencoder, mobile_v3, cnn_families, recurrent_audio ($OTHER_N each) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space transformer --space autoencoder --space mobile_v3 --space cnn_families \
  --space recurrent_audio --n "$OTHER_N" --seed "$SEED" --dtype int8 \
  "${TARGETS[@]}" --per-operator --workers "$WORKERS" --out "$OUT/world-ethos-u.parquet"
stamp "   a second zoo draw ($ZOO2_N, seed $((SEED + 1))) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space op_zoo --n "$ZOO2_N" --seed "$((SEED + 1))" --dtype int8 "${TARGETS[@]}" --per-operator \
  --workers "$WORKERS" --out "$OUT/world-ethos-u.parquet"
stamp "   motifs ($MOTIFS_N) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space motifs --n "$MOTIFS_N" --seed "$SEED" --dtype int8 "${TARGETS[@]}" --per-operator \
  --workers "$WORKERS" --out "$OUT/world-ethos-u.parquet"
stamp "   op_zoo and motifs with mixed weights ($MIXED_N each) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space op_zoo --space motifs --n "$MIXED_N" --seed "$SEED" --weights mixed --dtype int8 \
  "${TARGETS[@]}" --per-operator --workers "$WORKERS" --out "$OUT/world-ethos-u.parquet"
stamp "   16x8: op_zoo and recurrent_audio ($X16_N each) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space op_zoo --space recurrent_audio --n "$X16_N" --seed "$SEED" --dtype int16x8 \
  "${TARGETS[@]}" --per-operator --workers "$WORKERS" --out "$OUT/world-ethos-u.parquet"
stamp "   float sections in 8 spaces ($FLOAT_N each) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space op_zoo --space motifs --space cnn_families --space mobile_v3 --space transformer \
  --space recurrent_audio --space image_classification --space kws --n "$FLOAT_N" --seed "$SEED" --float-sections mixed \
  --dtype int8 "${TARGETS[@]}" --per-operator --workers "$WORKERS" --out "$OUT/world-ethos-u.parquet"
stamp "   affine layers in 8 spaces ($AFFINE_N each) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space op_zoo --space motifs --space cnn_families --space mobile_v3 \
  --space image_classification --space kws --space detection --space autoencoder --n "$AFFINE_N" --seed "$SEED" \
  --affine mixed --dtype int8 "${TARGETS[@]}" --per-operator --workers "$WORKERS" --out "$OUT/world-ethos-u.parquet"
stamp "   depthwise stems in kws, cnn_families and op_zoo ($STEMS_N each) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space kws --space cnn_families --space op_zoo --n "$STEMS_N" --seed "$SEED" --stems mixed \
  --dtype int8 "${TARGETS[@]}" --per-operator --workers "$WORKERS" --out "$OUT/world-ethos-u.parquet"
stamp "   trained weights in op_zoo and motifs ($TRAINED_ZOO_N each) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space op_zoo --space motifs --n "$TRAINED_ZOO_N" --seed "$SEED" --weights trained \
  --dtype int8 "${TARGETS[@]}" --per-operator --workers "$WORKERS" --out "$OUT/world-ethos-u.parquet"
stamp "   trained weights in 7 whole-architecture spaces ($TRAINED_N each) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space autoencoder --space transformer --space recurrent_audio --space kws \
  --space image_classification --space mobile_v3 --space cnn_families --n "$TRAINED_N" --seed "$SEED" \
  --weights trained --dtype int8 "${TARGETS[@]}" --per-operator --workers "$WORKERS" --out "$OUT/world-ethos-u.parquet"
stamp "   trained weights in 16x8: op_zoo and recurrent_audio ($TRAINED_N each) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space op_zoo --space recurrent_audio --n "$TRAINED_N" --seed "$SEED" --weights trained \
  --dtype int16x8 "${TARGETS[@]}" --per-operator --workers "$WORKERS" --out "$OUT/world-ethos-u.parquet"
stamp "   flat inputs in op_zoo and motifs ($FLAT_ZOO_N each) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space op_zoo --space motifs --n "$FLAT_ZOO_N" --seed "$SEED" --flat-inputs mixed \
  --weights trained --stems mixed --dtype int8 "${TARGETS[@]}" --per-operator --workers "$WORKERS" \
  --out "$OUT/world-ethos-u.parquet"
stamp "   flat inputs in 6 whole-architecture spaces ($FLAT_N each) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space kws --space recurrent_audio --space image_classification --space cnn_families \
  --space mobile_v3 --space transformer --n "$FLAT_N" --seed "$SEED" --flat-inputs mixed --weights trained \
  --stems mixed --dtype int8 "${TARGETS[@]}" --per-operator --workers "$WORKERS" --out "$OUT/world-ethos-u.parquet"

stamp "2/3 the paper spaces again, with per-operator labels ($PAPER_N per space) -> $OUT/world-ethos-u.parquet"
perfsage dataset build --space image_classification --space kws --space super_resolution --space detection \
  --n "$PAPER_N" --seed "$SEED" --dtype int8 "${TARGETS[@]}" --per-operator --workers "$WORKERS" \
  --out "$OUT/world-ethos-u.parquet"

stamp "3/3 a compact copy -> $OUT/compact/world-ethos-u.parquet"
perfsage dataset compact "$OUT/world-ethos-u.parquet" --out "$OUT/compact/world-ethos-u.parquet"
perfsage dataset info "$OUT/compact/world-ethos-u.parquet"
stamp "done in $(( $(date +%s) - started )) s"

#!/usr/bin/env bash
# Builds perfsage's training data into datasets/ at the repository root (gitignored), resumably:
#
#   datasets/paper-ethos-u.parquet/   int8 models of the four paper spaces (image_classification,
#                                     kws, super_resolution, detection), N per space (default
#                                     5,250: 21,000 models, so that >= 20,000 are labelled even if
#                                     some fail), each labelled on ethos-u55-256 AND ethos-u65-512
#   datasets/paper-host-cpu.parquet/  the first HOST_N models of each space (default 525: 2,100),
#                                     labelled on host-cpu with ONE worker (parallel workers would
#                                     share the cores they measure on); the same samples, so the
#                                     same ids as in paper-ethos-u
#   datasets/nb201.parquet            NAS-Bench-201 device latencies (perfsage dataset import-nb201)
#   datasets/compact/*.parquet        compact copies: spec + seed + labels + provenance, zstd 19,
#                                     no TFLite bytes. Small enough to version; rebuild the full
#                                     copy with `perfsage dataset expand FILE --out FULL.parquet`
#                                     (or just use them: Dataset.graphs() rebuilds from the specs).
#
# Kill it at any moment and run it again: every step resumes (the labelling jobs skip the models
# already stored, see `perfsage dataset build --help`). Each labelling job prints an estimate of its
# total time once its first 20 models are labelled, then progress (a bar on a terminal, a line a
# minute in a log). Measured on this project's shared 2-core machine (load 4-5, 2 workers): about
# 0.45 s of worker time per model for both Ethos-U targets together, averaged over the four spaces
# (image classification ~1 s, detection ~0.6 s, KWS ~0.14 s, super-resolution ~0.06 s), i.e. a few
# hours for 21,000 models; the host-cpu and NB201 steps take minutes.
#
# Usage: scripts/build_datasets.sh [--n-per-space N] [--host-n-per-space N] [--workers W]
#                                  [--seed S] [--out DIR] [--nb201-limit ROWS]
#                                  [--require-ethos ROWS] [--require-host ROWS]
# Run in the background:  nohup scripts/build_datasets.sh > datasets.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."

N=5250
HOST_N=525
WORKERS=0
SEED=0
OUT=datasets
NB201_LIMIT=""
REQUIRE_ETHOS=20000
REQUIRE_HOST=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --n-per-space) N="$2"; shift 2 ;;
    --host-n-per-space) HOST_N="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --nb201-limit) NB201_LIMIT="$2"; shift 2 ;;
    --require-ethos) REQUIRE_ETHOS="$2"; shift 2 ;;
    --require-host) REQUIRE_HOST="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_datasets.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
perfsage() { "$PYTHON" -m perfsage "$@"; }
SPACES=(--space image_classification --space kws --space super_resolution --space detection)
mkdir -p "$OUT/compact"
started=$(date +%s)
stamp() { echo "[$(date '+%F %T')] $*"; }

stamp "1/4 Ethos-U: $N int8 models per space on ethos-u55-256 and ethos-u65-512 -> $OUT/paper-ethos-u.parquet"
perfsage dataset build "${SPACES[@]}" --n "$N" --seed "$SEED" --dtype int8 \
  --target ethos-u55-256 --target ethos-u65-512 --workers "$WORKERS" --out "$OUT/paper-ethos-u.parquet"

stamp "2/4 host-cpu: $HOST_N int8 models per space, one worker -> $OUT/paper-host-cpu.parquet"
perfsage dataset build "${SPACES[@]}" --n "$HOST_N" --seed "$SEED" --dtype int8 \
  --target host-cpu --workers 1 --out "$OUT/paper-host-cpu.parquet"

stamp "3/4 NAS-Bench-201 device latencies -> $OUT/nb201.parquet"
if [ -f "$OUT/nb201.parquet" ]; then
  echo "$OUT/nb201.parquet exists; keeping it"
else
  perfsage dataset import-nb201 --out "$OUT/nb201.parquet" ${NB201_LIMIT:+--limit "$NB201_LIMIT"}
fi

stamp "4/4 compact copies -> $OUT/compact/"
for name in paper-ethos-u paper-host-cpu; do
  perfsage dataset compact "$OUT/$name.parquet" --out "$OUT/compact/$name.parquet"
done
perfsage dataset compact "$OUT/nb201.parquet" --out "$OUT/compact/nb201.parquet"

"$PYTHON" - "$OUT" "$REQUIRE_ETHOS" "$REQUIRE_HOST" <<'EOF'
import sys
from pathlib import Path

from perfsage.datasets import open_dataset

out, require = Path(sys.argv[1]), {"paper-ethos-u": int(sys.argv[2]), "paper-host-cpu": int(sys.argv[3])}
short = False
for name in ("paper-ethos-u", "paper-host-cpu", "nb201"):
    path = out / "compact" / f"{name}.parquet"
    ds = open_dataset(path)
    ok = int(ds.ok.sum())
    print(f"{path}: {ds.num_rows} rows, {ok} labelled, {path.stat().st_size:,} bytes "
          f"({path.stat().st_size / max(ds.num_rows, 1):.0f} bytes/row)")
    if ok < require.get(name, 0):
        short = True
        print(f"  fewer than the {require[name]} labelled rows required: see `perfsage dataset info "
              f"{out / (name + '.parquet')}` for the errors; rerun with a larger --n-per-space / "
              "--host-n-per-space, or retry the errors with `perfsage dataset build ... --retry-errors`")
sys.exit(1 if short else 0)
EOF
stamp "done in $(( ($(date +%s) - started) / 60 )) min"

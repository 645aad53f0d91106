#!/usr/bin/env bash
# Sets up everything perfsage needs on a fresh Debian machine: the system packages (Eigen,
# FlatBuffers with flatc, GoogleTest), a virtual environment in .venv with the Python packages,
# and perfsage itself built from this checkout (editable). Safe to run again: it skips what is done.
#   --test   also install what the tests need (LiteRT for cross-checks)
#   --bench  also install what the benchmarks compare against (tflite, CPU torch, PyTorch Geometric)
set -euo pipefail
cd "$(dirname "$0")/.."

extras=()
for arg in "$@"; do
  case "$arg" in
    --test) extras+=(test) ;;
    --bench) extras+=(bench) ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

system_packages=(libeigen3-dev libflatbuffers-dev flatbuffers-compiler libgtest-dev)
missing=()
for package in "${system_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$python" -m venv .venv
fi
pip() {
  # Keep the log readable: drop pip's notes about package index folders this machine lacks.
  .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1 |
    { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
# Build requirements are installed into .venv so rebuilds reuse them (no isolated build env).
pip install "scikit-build-core>=0.10" "pybind11>=2.12" ninja cmake numpy
spec="."
if [ ${#extras[@]} -gt 0 ]; then spec=".[$(IFS=,; echo "${extras[*]}")]"; fi
echo "setup: building perfsage"
pip install --no-build-isolation -e "$spec"
if [[ " ${extras[*]:-} " == *" bench "* ]]; then
  # The GNN benchmark's baseline. torch first and pinned: this machine kind has its CPU build on
  # disk, while an unpinned torch from PyPI would pull several GB of CUDA libraries.
  pip install "torch==2.13.0"
  pip install "torch-geometric>=2.4"
fi

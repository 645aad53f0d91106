#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh --test), then runs all tests: the GoogleTest suites through
# ctest (including the ASan+UBSan build of the reader tests), then pytest. Extra arguments go to
# pytest. Real models come from PERFSAGE_DATA (default ../shared/data); without them the tests that
# need them are skipped, saying so.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test || exit 1

if [ -z "${PERFSAGE_DATA:-}" ] && [ -d ../shared/data ]; then
  PERFSAGE_DATA="$(cd ../shared/data && pwd)"
fi
[ -n "${PERFSAGE_DATA:-}" ] && export PERFSAGE_DATA

export PATH="$PWD/.venv/bin:$PATH"  # the cmake and ninja that setup installed
cmake -S . -B build/ctest -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
cmake --build build/ctest --parallel 2 || exit 1
(cd build/ctest && ctest --output-on-failure --parallel 2)
ctest_status=$?

.venv/bin/python -m pytest "$@"
pytest_status=$?

if [ $ctest_status -ne 0 ]; then echo "ctest failed (exit $ctest_status)"; fi
exit $(( ctest_status != 0 || pytest_status != 0 ))

#!/usr/bin/env bash
# Runs the whole test suite, spread over one pytest-xdist worker per CPU core (`-n 0` as an
# argument runs it serially). pytest's exit 5 ("no tests collected") is a failure here.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -q -n auto "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "no tests were collected: failing" >&2; exit 1; fi
exit "$rc"

#!/usr/bin/env bash
# make demo: the Big Block Mode resize, live (see tests/vm/demo.py).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
exec python3 "$top/tests/vm/demo.py" "$@"

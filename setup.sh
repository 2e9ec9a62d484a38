#!/usr/bin/env bash
# One-stop setup on Debian 12 (apt + pip): Python deps, the port's compiled PSA op, and the legacy Caffe reference.
# Idempotent: reruns take seconds. Usage: bash setup.sh [--no-caffe]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PYTHON=${PYTHON:-python3}
step() { printf '\n[setup] %s\n' "$*"; }

step "Python packages (torch==2.13.0 and requirements.txt)"
if ! "$PYTHON" -c "import torch" 2>/dev/null; then  # conda users already have torch from environment.yml
  "$PYTHON" -m pip install -q torch==2.13.0
fi
"$PYTHON" -m pip install -q -r requirements.txt
# Cityscapes evaluation uses the official label table; the package's other needs (GUI tools) are not wanted.
"$PYTHON" -m pip install -q --no-deps cityscapesscripts==2.3.0

step "PSA op extension (port._C)"
MAX_JOBS=${MAX_JOBS:-2} "$PYTHON" -m pip install -q --no-build-isolation --no-deps -e .

if [[ "${1:-}" != "--no-caffe" ]]; then
  step "legacy Caffe reference (cached; a cold build takes several minutes)"
  PYTHON="$PYTHON" bash legacy_caffe/build.sh
fi
step "done"

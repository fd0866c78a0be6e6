#!/usr/bin/env bash
# Does memadvise still work with the oldest torch that pyproject.toml claims?
#
# Creates a scratch virtual environment, installs that torch (the CPU wheel), memadvise and pytest, and
# runs the unit tests (or the test paths given as arguments) there:
#
#   bench/compat.sh                                        # tests/unit
#   bench/compat.sh tests/unit tests/integration/test_fsdp_trace.py
#
# COMPAT_VENV=DIR keeps the environment in DIR (default: a temporary folder, removed afterwards);
# TORCH_INDEX_URL picks where torch comes from (default: PyTorch's CPU wheels; empty: pip's own index).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
oldest=$("$python" - <<'EOF'
import re
from pathlib import Path

text = Path("pyproject.toml").read_text()
match = re.search(r'"torch>=([0-9][0-9.]*)"', text)
if match is None:
    raise SystemExit("pyproject.toml names no torch>=X requirement")
print(match.group(1))
EOF
)

if [[ -n "${COMPAT_VENV:-}" ]]; then
    venv=$COMPAT_VENV
else
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    venv=$scratch/venv
fi
index=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}

echo "torch ${oldest} (the oldest pyproject.toml claims) in ${venv}" >&2
"$python" -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
if [[ -n "$index" ]]; then
    python -m pip install --quiet "torch==${oldest}.*" --index-url "$index"
else
    python -m pip install --quiet "torch==${oldest}.*"
fi
# memadvise's own dependencies, without letting pip move torch off the version under test.
python -m pip install --quiet -e . pytest "torch==${oldest}.*"
python -c "import torch, memadvise; print('memadvise', memadvise.__version__, 'torch', torch.__version__)"

if [[ $# -eq 0 ]]; then
    set -- tests/unit
fi
python -m pytest -q -p no:cacheprovider "$@"

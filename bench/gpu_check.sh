#!/usr/bin/env bash
# The GPU checks, as run on a lent machine that reaches no package index or model hub: the missing wheels
# travel in .whl/ and the default model's config + tokenizer in .gpucarry/ (weights are random: speed and
# memory depend on shapes only). Results land in $OUT (or /tmp/gpu-out).
#
#   bench/gpu_check.sh train     # bench_training.py: ours vs TRL + peft defaults, 4-bit vs 8-bit vs 16-bit
#   bench/gpu_check.sh memory    # bench_memory_preflight.py: estimate vs torch.cuda.max_memory_allocated
#   bench/gpu_check.sh tests     # the training tests on CUDA
set -euo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
if [ -d .whl ] && [ ! -d /tmp/site ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
MODEL=/tmp/smollm2-135m-random
[ -f $MODEL/model.safetensors ] || python3 bench/random_model.py --like .gpucarry/smollm2-135m-shape --out $MODEL
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, trl, peft, bitsandbytes; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'bnb', bitsandbytes.__version__)" | tee -a "$OUT/gpu.txt"
for what in "$@"; do
  case $what in
    train)  python3 bench/bench_training.py --model $MODEL --steps "${STEPS:-30}" --count 200 --padding-free 2>&1 \
              | grep -v "it/s\]\|s/it\]" | tee "$OUT/training_gpu.txt" ;;
    memory) python3 bench/bench_memory_preflight.py --model $MODEL --extra --steps 3 2>&1 | tee "$OUT/memory_gpu.txt" ;;
    tests)  MOODSHELF_TEST_TOKENIZER=$PWD/.gpucarry/smollm2-135m-shape python3 -m pytest -q tests/test_training.py tests/test_memory.py 2>&1 | tail -30 | tee "$OUT/tests_gpu.txt" ;;
  esac
done

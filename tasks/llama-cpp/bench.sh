#!/usr/bin/env bash
# CPU throughput of llama.cpp: TinyLlama 1.1B Q4_0, prompt 512 and generation 128 tokens, 5 repetitions,
# one thread per physical core. Prints `METRIC tg128=<tokens/s>` (the gated metric) and `METRIC pp512=`.
# The model is fetched once per worker into ~/.cache/research-agent/models (never on the machine running
# research-agent). Run from the llama.cpp build's root (the repository), after `cmake --build build`.
set -euo pipefail

MODEL_URL="${RA_BENCH_MODEL_URL:-https://huggingface.co/TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/resolve/main/tinyllama-1.1b-chat-v1.0.Q4_0.gguf}"
MODELS="${HOME}/.cache/research-agent/models"
MODEL="${MODELS}/$(basename "${MODEL_URL}")"

mkdir -p "${MODELS}"
if [ ! -s "${MODEL}" ]; then
  (
    flock 9  # base and candidate never download at the same time on one worker
    if [ ! -s "${MODEL}" ]; then
      curl -fsSL --retry 5 --retry-delay 5 -o "${MODEL}.part" "${MODEL_URL}"
      mv "${MODEL}.part" "${MODEL}"
    fi
  ) 9>"${MODELS}/.lock"
fi

# Physical cores: hyperthreads do not help llama.cpp's CPU kernels.
CORES="$(lscpu -p=CORE 2>/dev/null | grep -v '^#' | sort -u | wc -l)"
[ "${CORES}" -ge 1 ] 2>/dev/null || CORES="$(nproc)"

BENCH=./build/bin/llama-bench
[ -x "${BENCH}" ] || { echo "llama-bench not built (${BENCH})" >&2; exit 1; }

OUT="$(mktemp)"
trap 'rm -f "${OUT}"' EXIT
"${BENCH}" -m "${MODEL}" -p 512 -n 128 -t "${CORES}" -r 5 -o json > "${OUT}"
python3 - "${OUT}" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
for row in rows:
    if row.get("n_gen", 0) == 0 and row.get("n_prompt") == 512:
        print(f"METRIC pp512={row['avg_ts']:.3f}")
    elif row.get("n_prompt", 0) == 0 and row.get("n_gen") == 128:
        print(f"METRIC tg128={row['avg_ts']:.3f}")
PY

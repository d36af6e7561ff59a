#!/usr/bin/env bash
# Creates the throwaway virtualenv for the PyTorch reference benchmark
# (bench/pytorch/lstm_bench.py). A comparison tool, never a product dependency.
#
#   BENCH_VENV=DIR         venv path (default: <repo>/target/bench-venv, git-ignored)
#   BENCH_TORCH_CUDA=MODE  stubs (default): torch without any nvidia-* wheel, see below
#                          wheels: install the nvidia-* wheels torch links (~2.8 GB)
#   BENCH_FORCE=1          redo the install even if the venv is already complete
#   PYTHON=python3.11      interpreter to build the venv from (default python3)
#
# Why "stubs": PyPI has no CPU-only torch wheel for Linux (download.pytorch.org is not
# reachable here); `pip install torch` pulls ~3-4 GB of nvidia-*/triton/cuda-* wheels.
# `pip install --no-deps torch` alone does NOT import: libtorch_cpu.so itself has
# DT_NEEDED libcudart.so.13 / libcupti.so.13, and libtorch_cuda.so (loaded by
# `import torch`) needs cuBLAS, cuDNN, NCCL, cuSPARSE(Lt), cuFFT, cuFile, NVRTC, NVSHMEM.
# make_cuda_stubs.py compiles (gcc) tiny stand-ins with the same sonames, symbol
# versions and symbols, each function returning an error code, into torch/lib.
# CUDA then reports no device and every op runs on the same CPU kernels
# (libtorch_cpu.so: MKL, oneDNN, AVX-512) as with the real libraries.
# If the stubs cannot be built or fail the check, the script falls back to "wheels".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${BENCH_VENV:-$REPO/target/bench-venv}"
PY="${PYTHON:-python3}"
MODE="${BENCH_TORCH_CUDA:-stubs}"
REQ="$HERE/requirements.txt"
REQ_CUDA="$HERE/requirements-cuda-libs.txt"
STAMP="$VENV/.bench-setup-ok"

case "$MODE" in stubs|wheels) ;; *) echo "BENCH_TORCH_CUDA must be stubs or wheels" >&2; exit 2 ;; esac

verify() {
  "$VENV/bin/python" - <<'PY'
import torch, numpy, jieba
torch.set_num_threads(1)
torch.manual_seed(0)
m = torch.nn.LSTM(8, 8, batch_first=True)
x = torch.randn(2, 5, 8, requires_grad=True)
out, (h, c) = m(x)
h.sum().backward()
assert x.grad is not None and bool(torch.isfinite(x.grad).all())
assert not torch.cuda.is_available()
print(f"verify ok: torch {torch.__version__}, cpu {torch.backends.cpu.get_cpu_capability()}, "
      f"mkl {torch.backends.mkl.is_available()}, numpy {numpy.__version__}, jieba {jieba.__version__}")
PY
}

REQUESTED="$MODE"
want_stamp() { cat "$REQ" "$REQ_CUDA" "$HERE/make_cuda_stubs.py"; echo "mode=$REQUESTED"; }

if [[ "${BENCH_FORCE:-0}" != 1 && -f "$STAMP" ]] && cmp -s "$STAMP" <(want_stamp) && verify >/dev/null 2>&1; then
  echo "bench venv already set up at $VENV (CUDA libs: $(cat "$VENV/.bench-cuda-mode" 2>/dev/null); BENCH_FORCE=1 to redo)"
  exit 0
fi

start=$(date +%s)
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi
pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"; }
TORCH_DIR() { "$VENV/bin/python" -c 'import importlib.util as u, os; print(os.path.dirname(u.find_spec("torch").origin))'; }

# Exact pins, no dependency resolution: nothing beyond requirements.txt gets in.
pip_install --no-deps -r "$REQ"

remove_stubs() {
  local lib; lib="$(TORCH_DIR)/lib"
  if [[ -f "$lib/BENCH_CUDA_STUBS" ]]; then
    while read -r so; do [[ -n "$so" ]] && rm -f "$lib/$so"; done < "$lib/BENCH_CUDA_STUBS"
    rm -f "$lib/BENCH_CUDA_STUBS"
  fi
}

ok=0
if [[ "$MODE" == stubs ]]; then
  if command -v gcc >/dev/null && command -v readelf >/dev/null && command -v nm >/dev/null; then
    remove_stubs
    # real nvidia libs (from an earlier "wheels" setup) would shadow the stubs: RPATH order
    grep -Eo '^nvidia-[a-z0-9-]+' "$REQ_CUDA" | xargs "$VENV/bin/python" -m pip uninstall -y -q 2>/dev/null || true
    if "$VENV/bin/python" "$HERE/make_cuda_stubs.py" "$(TORCH_DIR)" && verify; then
      ok=1
    else
      echo "CUDA stubs failed; falling back to the nvidia-* wheels" >&2
      remove_stubs
    fi
  else
    echo "gcc/binutils missing (apt-get install gcc binutils); falling back to the nvidia-* wheels" >&2
  fi
  [[ $ok == 1 ]] || MODE=wheels
fi
if [[ $ok == 0 ]]; then
  remove_stubs
  pip_install --no-deps -r "$REQ_CUDA"
  verify
fi

echo "$MODE" > "$VENV/.bench-cuda-mode"
want_stamp > "$STAMP"
echo "bench venv ready at $VENV (mode $MODE) in $(( $(date +%s) - start )) s; size $(du -sh "$VENV" | cut -f1)"

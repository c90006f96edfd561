#!/usr/bin/env bash
# The GPU checks of smisbench in one short run (docs/gpu.md): the CUDA tests (tests/test_cuda.py) and the
# GroupDNet/VSPADE FPS at DeepFashion size (scripts/gpu_fps.py). Target: under 4 minutes on one H200.
#
#   bash scripts/gpu_checks.sh                 # writes gpu_out/
#   OUT=$OUT bash scripts/gpu_checks.sh        # through the device tool: everything lands in $OUT
#
# Wheels of packages the GPU machine lacks (lpips, for the diversity half of the sharded check) are
# installed from .whl/ when that folder holds any (see docs/gpu.md). Each step runs under `timeout`,
# so a hang costs that step's limit, not the whole budget; the script runs every step and exits
# non-zero if any failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT_DIR="${OUT:-gpu_out}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python3}"
TEST_LIMIT_S="${GPU_TEST_LIMIT_S:-150}"
FPS_LIMIT_S="${GPU_FPS_LIMIT_S:-75}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
LOG="$OUT_DIR/gpu_checks.log"
: >"$LOG"
failed=()

say() { echo "== $*" | tee -a "$LOG"; }

step() {  # step NAME LIMIT_S COMMAND...: run under timeout, log it, remember a failure
    local name="$1" limit="$2"
    shift 2
    say "$name (limit ${limit}s): $*"
    local started=$SECONDS rc=0
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG" || rc=${PIPESTATUS[0]}
    say "$name: exit $rc after $((SECONDS - started))s"
    if [ "$rc" -ne 0 ]; then failed+=("$name (exit $rc)"); fi
}

if compgen -G ".whl/*.whl" >/dev/null; then
    step wheels 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/smisbench-site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/smisbench-site"
fi

say "device"
{ timeout 20 nvidia-smi -L || echo "nvidia-smi -L failed"; } 2>&1 | tee -a "$LOG"
step versions 30 "$PY" -c '
import torch
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| cuDNN", torch.backends.cudnn.version())
print("cuda available:", torch.cuda.is_available(), "| devices:", torch.cuda.device_count())
if torch.cuda.is_available():
    print("device 0:", torch.cuda.get_device_name(0), "| capability", torch.cuda.get_device_capability(0))
    print("NCCL", torch.cuda.nccl.version(), "| cudnn.allow_tf32", torch.backends.cudnn.allow_tf32,
          "| matmul.allow_tf32", torch.backends.cuda.matmul.allow_tf32)
for name in ("lpips", "torch_fidelity", "numpy", "pytest"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "installed"))
    except ImportError:
        print(name, "not installed")
'

step cuda-tests "$TEST_LIMIT_S" "$PY" -m pytest tests/test_cuda.py -m cuda -q -p no:cacheprovider -rA \
    --junitxml "$OUT_DIR/junit_cuda.xml"

step fps "$FPS_LIMIT_S" "$PY" scripts/gpu_fps.py --device cuda --dataset deepfashion \
    --out "$OUT_DIR/gpu_fps.json"

if [ "${#failed[@]}" -ne 0 ]; then
    say "FAILED: ${failed[*]} (log: $LOG)"
    exit 1
fi
say "all GPU checks passed; results in $OUT_DIR/ (junit_cuda.xml, gpu_fps.json, gpu_checks.log)"

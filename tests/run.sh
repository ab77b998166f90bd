#!/usr/bin/env bash
# The test command (README, .ci/run): install the project with its CPU, conversion and test extras plus the
# mmsegmentation 1.x reference, then run pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# pip install, quiet; on success, drop pip's resolver report about the --no-deps reference packages below (the
# red "ERROR: pip's dependency resolver does not currently take into account ..." block listing mmengine/mmcv/
# opencv-python requirements): those packages are installed without their declared deps on purpose. On failure
# everything pip said is shown.
pip_install() {
    local log
    log=$(mktemp)
    if python -m pip install -q --disable-pip-version-check --root-user-action=ignore "$@" 2>"$log"; then
        grep -v -E "dependency resolver does not currently take into account|^(mmsegmentation|mmengine|mmcv-lite|mmcv|tensorrt-stubs) [^ ]+ (requires|has requirement) " "$log" >&2 || true
        rm -f "$log"
    else
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
}
pip_install -e '.[cpu,convert,quantize,report,test]'
# mmseg's reference classes, test-only: --no-deps, because their declared deps would pull a different torch/mmcv.
pip_install --no-deps \
    mmsegmentation==1.2.2 mmengine==0.10.7 mmcv-lite==2.1.0
pip_install \
    addict==2.4.0 yapf==0.43.0 termcolor==3.3.0 ftfy==6.3.1 scipy rich regex pyyaml
# TensorRT type stubs for mypy on the TensorRT code (--no-deps: its 'tensorrt' dependency is NVIDIA's download stub).
# Note: the stubs make 'import tensorrt' succeed as an empty namespace package; code checks for tensorrt.Builder.
pip_install --no-deps tensorrt-stubs==10.13.0.35.1
# Triton serving tests (tests/integration/test_triton.py): the client here, and the model environment Triton's
# Python backend runs in (its own venv: numpy<2, nvidia-pytriton's tritonserver; quick when already made).
pip_install "tritonclient[http,grpc]==2.73.0"
python -m sdk.serving.env || echo "tests/run.sh: no Triton model environment (above); test_triton.py skips" >&2
exec python -m pytest -q "$@"

#!/usr/bin/env bash
# The test command (README, .ci/run): install the project with its CPU, conversion and test extras plus the
# mmsegmentation 1.x reference, then run pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --disable-pip-version-check -e '.[cpu,convert,quantize,report,test]'
# mmseg's reference classes, test-only: --no-deps, because their declared deps would pull a different torch/mmcv.
python -m pip install -q --disable-pip-version-check --no-deps \
    mmsegmentation==1.2.2 mmengine==0.10.7 mmcv-lite==2.1.0
python -m pip install -q --disable-pip-version-check \
    addict==2.4.0 yapf==0.43.0 termcolor==3.3.0 ftfy==6.3.1 scipy rich regex pyyaml
# TensorRT type stubs for mypy on the TensorRT code (--no-deps: its 'tensorrt' dependency is NVIDIA's download stub).
# Note: the stubs make 'import tensorrt' succeed as an empty namespace package; code checks for tensorrt.Builder.
python -m pip install -q --disable-pip-version-check --no-deps tensorrt-stubs==10.13.0.35.1
exec python -m pytest -q "$@"

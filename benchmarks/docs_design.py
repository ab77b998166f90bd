"""docs/BENCHMARKS.md's last section, "Design notes: why each choice": the measurements that settled the choices the
code makes, moved out of the modules' docstrings (each keeps one sentence of why). ``benchmarks.make_docs`` appends
it after the sections it renders from JSON. Standard library only.
"""
from __future__ import annotations

TITLE = "Design notes: why each choice"
NOTES = """\
The measurements behind choices the code makes, kept here rather than in the modules' docstrings (each module says
in one sentence why, and points here). They come from the runs that settled each choice, mostly on the 2-core
development VM; unlike the sections above, these numbers are not regenerated from JSON: read them as the reason for
a choice, not as current figures.

### ONNX Runtime INT8 recipe (`calibration/quantize_ort.py`)

What the CPU target (`target="onnxruntime"`) quantizes, measured on B0 at 512x512 on a 2-core AVX-512 CPU (ONNX
Runtime 1.32, side by side, p50): ONNX Runtime's default (quantize everything) makes QLinearSoftmax the most
expensive kernel. On the portable graph, weights-only layers with quantized outputs ran 1.08x faster than FP32 (the
DequantizeLinear passes ate the int8 gain), quantizing the decoder too made 1.24x, leaving MatMul outputs float
1.31x, and quantizing the attention matmuls (u8 x u8) or the depthwise convs made it slower again (the depthwise conv
sits between two Transposes there, and its DequantizeLinear split ONNX Runtime's GELU fusion); keeping only the
classifier float cost 9 ms (1.15x: the 256-channel map at 1/4 resolution must be dequantized for it).

Calibration defaults. minmax for ONNX Runtime, each activation's range the mean over the frames of each frame's min
and max: the global min/max of 300 frames let rare outliers widen the uint8 steps (B0 on CamVid test: 98.90% pixel
agreement with FP32, the mean ranges 99.09%; val 99.21% -> 99.41%). percentile (99.999) for the TensorRT Q/DQ
model, whose symmetric int8 activations lose resolution to outliers under minmax (B0 on CamVid test, 300 frames:
minmax 98.89% agreement, under the 99% bar; percentile 99.16%).

Calibration time over 300 frames on a 2-core CPU: minmax about 30 s; percentile 172 s for the Q/DQ model (453 s
before the uniform-histogram shortcut, `_UniformHistogramNumpy`: the sort it avoids was 19 of 41 s of a 32-frame
percentile calibration of B0) and 259 s for the CPU target; entropy 250 s.

### OpenVINO INT8 recipe (`calibration/quantize_openvino.py`)

B0 on CamVid, 300 calibration frames, 2-core AVX-512 BF16/VNNI CPU, latency mode (`benchmarks.bench_openvino`):
val mIoU drop 0.15 points, pixel agreement with FP32 99.6%, 29.7 vs 33.9 ms (OpenVINO's bf16 default) at 512x512,
18.2 vs 20.7 ms at 360x480. The gain is bounded: INT8 speeds up the Linears and dense convs (13 of 34 ms in bf16),
while the attention kernel, depthwise convs, resizes, LayerNorms and the argmax head (about 60%) run as before, and
each quantized activation costs an elementwise quantize pass. NNCF's defaults (no model type, nothing ignored) gave
34.5 ms and mIoU 2.5. With the depthwise convolutions quantized (one range per token, 16384 at 512x512, baked from
the calibration frames) CamVid val mIoU fell from 45.5 to 2-6; OpenVINO's CPU plugin ran that conv in bf16 behind a
standalone FakeQuantize and reorders anyway.

### The ONNX Runtime graph (`converters/ort_graph.py`)

B0, `python -m benchmarks.bench_int8`, 2-core AVX-512 CPU, ONNX Runtime 1.32, side by side, p50: FP32 1.19-1.32x
faster than the portable graph at 512x512 and 1.08-1.11x at 360x480 (three runs); INT8 (its recipe quantizes the
depthwise convs here, which did not pay on the portable graph) 1.54x / 1.58x faster than this FP32. Taking a token
map's batch and channels from upstream instead of a Shape node on a convolution's output (`to_tokens`) leaves 10
Transposes and 45 DequantizeLinear in B0's INT8 model, where the Shape node left 24 and 59.

### OpenVINO runtime options (`runtimes/openvino.py`)

`precision` left at OpenVINO's default: on CPUs with AVX-512 BF16 / AMX that is bf16, about 1.7x faster than f32 on
B0, masks agreeing on ~99.9% of pixels. `performance_mode="throughput"`: B0 INT8 at 512x288 on a 2-core Xeon, 2
streams of 1 thread gave ~1.25x the frames per second of latency mode at ~20% less CPU per frame, each frame taking
longer.

### Latency-aware INT8 (`calibration/latency_aware.py`)

Why it times each region: on CPUs without VNNI, ONNX Runtime INT8 measured 0.69-0.92x of its FP32 (TensorRT users
report the same for transformers). Why a region must be faster by `NOISE` (2%) to stay float: on a shared 2-core
VM, "no slower" alone kept regions float on noise.

### Host threads (`sdk/core/parallel.py`)

`serial_host_work`: splitting each frame's host work while the stream's file-mode workers already run frames side
by side gave 3.5% fewer frames per second (Xeon, 2 cores). Reader niceness: 8 cameras of 30 fps 720p H.264 on 2
cores at equal priority, the decoding threads starved the model's (1.65 FPS in all, p95 5.3 s, where 8 separate
processes got 4.3 FPS)."""


def design_section() -> list[str]:
    """The section's lines, heading first."""
    return [f"## {TITLE}", "", *NOTES.splitlines(), ""]

"""Is the INT8 artifact faster than its FP32 here? ``segedge quantize`` asks before it ships one.

INT8 is not faster everywhere: on AMX Xeons OpenVINO's bf16 matches or beats its INT8, and an ONNX Runtime INT8
graph can lose to the same FP32 model on OpenVINO (issue 28). So quantize times the INT8 artifact and its FP32
source on this machine, on every installed runtime that runs each, each runtime **alone** (opened, warmed up, timed
a few runs, closed before the next opens: ``runtimes.choose.time_runtime``, so no runtime's spinning threads share
the cores with another's timing), records both in the manifest (``sdk.core.records.SpeedRecord``, with the
machine's ISA; ``segedge inspect`` shows it), and says so where INT8 is not ``MARGIN`` times faster than the
fastest FP32, naming the faster command. A few seconds; the TensorRT Q/DQ target is not timed (its speed is the
engine's, on the GPU).
"""
from __future__ import annotations

from pathlib import Path

from runtimes import RUNTIMES
from runtimes.choose import ANY_SIZE, ISOLATION, input_size_hw, runnable, time_runtime
from sdk.core.cpu import host_isa
from sdk.core.manifest import Manifest, read_manifest
from sdk.core.preprocess import network_size
from sdk.core.records import QuantizationRecord, SpeedRecord

MARGIN = 1.10  # INT8 costs accuracy: below 10% faster than FP32 it is not worth shipping without a word


def timing_size_hw(int8: Manifest, frame_hw: tuple[int, int] | None) -> tuple[int, int]:
    """The network input both are timed at: the INT8's static input, else its network size, else the network size
    of the calibration frames (``frame_hw``), else ``runtimes.choose.DEFAULT_SIZE_HW``."""
    hw, source = input_size_hw(int8)
    if source == ANY_SIZE and frame_hw is not None:
        return network_size(int8.preprocess, (int(frame_hw[0]), int(frame_hw[1])))
    return hw


def time_each(artifact: Path, size_hw: tuple[int, int]) -> tuple[dict[str, float], dict[str, str]]:
    """(runtime -> p50 ms, runtime -> its description) for every installed runtime that runs ``artifact``, each
    timed alone, one after another."""
    manifest = read_manifest(artifact)
    names, _ = runnable(RUNTIMES, manifest)
    p50, described = {}, {}
    for name in names:
        record, _ = time_runtime(RUNTIMES[name], artifact, manifest, {}, size_hw)
        p50[name], described[name] = record["p50_ms"], record["describe"]
    return p50, described


def measure_speed(int8: Path, fp32: Path, *, frame_hw: tuple[int, int] | None = None,
                  fp32_shown: Path | None = None) -> SpeedRecord | None:
    """Time ``int8`` and ``fp32`` here (see the module docstring); None for the TensorRT Q/DQ target. fp32_shown:
    the FP32 artifact's path as the record names it (``fp32`` may be in a staging folder)."""
    m8 = read_manifest(int8)
    quantization = QuantizationRecord.read(m8)
    if quantization is not None and quantization.target == "tensorrt":
        return None
    size_hw = timing_size_hw(m8, frame_hw)
    int8_ms, _ = time_each(int8, size_hw)
    fp32_ms, fp32_described = time_each(fp32, size_hw)
    if not int8_ms or not fp32_ms:
        return None
    best8 = min(int8_ms, key=int8_ms.__getitem__)
    best32 = min(fp32_ms, key=fp32_ms.__getitem__)
    speedup = fp32_ms[best32] / int8_ms[best8]
    return SpeedRecord(size_hw=list(size_hw), int8_ms=int8_ms, fp32_ms=fp32_ms, int8_runtime=best8,
                       fp32_runtime=best32, speedup=round(speedup, 3), margin=MARGIN, int8_faster=speedup >= MARGIN,
                       fp32_artifact=str(fp32_shown or fp32), fp32_run=fp32_described[best32], isolation=ISOLATION,
                       machine=host_isa())


def attach_speed(int8: Path, record: SpeedRecord) -> None:
    """Write ``record`` into the INT8 artifact's manifest."""
    record.attach(read_manifest(int8)).write(int8)


def summary(record: SpeedRecord) -> str:
    """One line: both timings, the ratio, the machine."""
    h, w = record.size_hw
    return (f"INT8 {record.int8_ms[record.int8_runtime]:.3g} ms ({record.int8_runtime}) vs FP32 "
            f"{record.fp32_ms[record.fp32_runtime]:.3g} ms ({record.fp32_run or record.fp32_runtime}) p50 at {h}x{w}: "
            f"{record.speedup:.2f}x, on this {record.machine.get('class', '?')} CPU "
            f"({', '.join(record.machine.get('flags') or []) or 'no listed ISA flags'}; each runtime timed alone)")


def slower_message(record: SpeedRecord, *, source: str | Path) -> str | None:
    """None where INT8 is faster by the margin; else what was measured and the faster command. source: what was
    quantized (the checkpoint or FP32 artifact), for the report command."""
    if record.int8_faster:
        return None
    fp32 = record.fp32_artifact
    return (f"INT8 is not faster than its FP32 on this machine: {summary(record)}; INT8 needs {record.margin:.2f}x "
            f"to be worth its accuracy cost. Faster here: the FP32 model on {record.fp32_runtime}: segedge predict "
            f"{fp32} IMAGES --output masks/ --runtime {record.fp32_runtime} (runtime auto measures and picks it too); "
            f"or INT8 only in the regions where it is faster: the latency-aware variant of segedge report {source} "
            "--calib FRAMES --eval LABELLED")

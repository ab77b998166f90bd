"""Latency benchmarks: ``segedge bench`` and the timing helpers every benchmark in this project uses.

    segedge bench out/b0-ov-int8 --size 512 512 --json bench.json
    segedge bench out/b0-fp32 --end-to-end --size 360 480 --size 1024 2048 \
        --baseline pytorch ../shared/models/segformer-b0-camvid-hf --json e2e.json

Two modes:
- model (default): a preprocessed (N, 3, H, W) float32 input -> the (N, H, W) mask at the same size (the in-graph
  head, or a logits head upsampled + argmaxed on the host). ``--size`` is the network input size.
- end-to-end (``--end-to-end``): (H, W, 3) uint8 frames -> ``Segmenter`` (the artifact's preprocessing, inference)
  -> full-resolution masks. ``--size`` is the frame size.

Baseline (``--baseline pytorch CHECKPOINT``, a Hugging Face folder): transformers' SegformerForSemanticSegmentation
in PyTorch eager, with HF-style post-processing (bilinear upsample of the logits to the frame size, argmax); in
end-to-end mode the whole transformers pipeline (the checkpoint's image processor, the model,
``post_process_semantic_segmentation``).

How variants are kept apart while timed: ``segedge bench``, the benchmarks and the report time each variant alone in
a fresh process of its own, in alternating rounds (``sdk.timing.isolated``): in one process, alternating run by run,
ONNX Runtime's intra-op threads spin-wait after each run and slowed whatever ran next (two ORT sessions alternating
took 60 and 44 ms where each alone took 33.5 and 21.9; issue 28), so a pause between runs is not enough.
``measure_latency`` (one process, alternating run by run, a pause before each run) stays for the ``--in-process``
comparisons and for the one study not moved to the harness (``benchmarks/upsample_study``). Timings on a
shared machine are noisy: compare variants measured in one run, by their medians, and read the JSON's ``isolation``
record.

The parts: ``stats`` (latency statistics, ``measure_latency``, the machine record, load and memory probes),
``isolated`` (the isolated harness), ``bench`` (``segedge bench``), ``baseline`` (the transformers baseline).
"""
from __future__ import annotations

from sdk.timing.baseline import BASELINE_INSTALL, TransformersBaseline
from sdk.timing.bench import SCHEMA, bench, format_bench, synthetic_frame
from sdk.timing.stats import (KEY_CPU_FLAGS, VERSIONED, cpu_times, environment, latency_stats, library_versions,
                              measure_latency, other_load, probe_load_and_memory, throughput_fps)

__all__ = ["SCHEMA", "latency_stats", "measure_latency", "throughput_fps", "library_versions", "environment",
           "cpu_times", "other_load", "probe_load_and_memory", "BASELINE_INSTALL", "TransformersBaseline", "bench",
           "format_bench", "synthetic_frame", "KEY_CPU_FLAGS", "VERSIONED"]

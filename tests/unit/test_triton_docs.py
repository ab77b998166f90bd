"""The Triton serving section of docs/BENCHMARKS.md renders from benchmarks/triton_bench.py's JSON: ratios against
the in-process best computed from it, Triton's formed batches, the soak line; a document missing keys still renders."""
from __future__ import annotations

from benchmarks import make_docs
from benchmarks.docs_sections import render_triton


def test_triton_section_from_the_json():
    d = {"schema": "segedge.triton_bench/1", "artifact": "out/a", "frames": "CamVid val, 8 frames 360x480",
         "model": {"format": "openvino", "precision": "int8", "head": "refine", "size_hw": [360, 480]},
         "seconds_per_run": 15, "instances": 1, "max_batch": 8, "max_queue_delay_us": 2000,
         "masks_equal_in_process": "8/8",
         "in_process": {"1 thread, 1 frame per call": {"fps": 20.0, "p50_ms": 50.0, "p95_ms": 60.0},
                        "2 threads, 1 frame per call": {"fps": 25.0, "p50_ms": 80.0, "p95_ms": 90.0}},
         "in_process_best": {"mode": "2 threads, 1 frame per call", "fps": 25.0},
         "served": [{"protocol": "grpc", "clients": 8, "fps": 22.5, "p50_ms": 350.0, "p95_ms": 420.0,
                     "batches_formed": {"1": 3, "8": 10, "4": 2}, "mean_batch": 6.5}],
         "soak": {"requests": 100, "malformed": 5, "clients": 8, "good_ok": 95, "good_wrong": 0, "good_failed": 0,
                  "bad_refused": 5, "server_restarts": 0, "rss_mib": {"after_warmup_mib": 200, "end_mib": 202},
                  "rss_growth_pct": 1.0, "wall_s": 9, "error_messages": {"16x16": "IMAGE: too small"}},
         "server_exit_code": 0}
    assert make_docs.kind_of(d) == "triton"
    text = "\n".join(render_triton(d))
    assert "| grpc | 8 | 22.5 | 0.90x | 350.0 | 420.0 | 1x3, 4x2, 8x10 | 6.50 |" in text
    assert "| 2 threads, 1 frame per call | 25.0 | 80.0 | 90.0 |" in text
    assert "malformed refused with an error 5/5" in text and "good answered with the in-process mask 95/95" in text
    assert "(+1.0%)" in text and "- 16x16: `IMAGE: too small`" in text and "exit code 0" in text


def test_triton_section_with_keys_missing():
    text = "\n".join(render_triton({"schema": "segedge.triton_bench/1", "served": [{"protocol": "http"}]}))
    assert "| http | - | - | - | - | - | - | - |" in text

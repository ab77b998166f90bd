"""docs/BENCHMARKS.md is generated from docs/benchmarks/*.json by benchmarks/make_docs.py: the committed file is what
the generator gives, and each kind of JSON renders (numbers, computed ratios, command, ISA) from a small synthetic
file, also with keys missing. Fast, CPU only, standard library."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import docs_design, make_docs

ROOT = Path(__file__).resolve().parents[2]
VNNI_ENV = {"cpu_model": "Test CPU", "cpu_flags": ["avx", "avx2", "avx512f", "avx512bw", "avx512_vnni", "fma"],
            "cpu_key_flags": ["avx2", "avx512f", "avx512bw", "avx512_vnni"], "usable_cpus": 4,
            "platform": "Linux-x86_64", "versions": {"onnxruntime": "1.0.0", "python": "3.11.7"}}
AVX2_ENV = {"cpu_model": "Old CPU", "cpu_key_flags": ["avx2", "fma"], "usable_cpus": 2, "platform": "Linux-x86_64"}


def lat(p50: float) -> dict:
    return {"n": 5, "p50_ms": p50, "p90_ms": p50 + 1, "p99_ms": p50 + 2, "mean_ms": p50}


SYNTHETIC = {
    # the older int8_bench.json: no schema, recognised by its keys; 3-seed robustness
    "int8_old.json": {
        "environment": AVX2_ENV, "calibration": "8 frames", "build_seconds": {"ort-int8": 3.0},
        "accuracy": {"ort-fp32": {"val_miou": 0.5, "val_agreement": 1.0, "val_drop_points": 0.0},
                     "ort-int8": {"val_miou": 0.49, "val_agreement": 0.99, "val_drop_points": 1.0},
                     "ort-int8 s1": {"val_miou": 0.48, "val_agreement": 0.98, "val_drop_points": 2.0}},
        "robustness": {"ort-int8 val": {"seeds": [0, 1, 2], "mean_drop_points": 1.5, "worst_drop_points": 2.0,
                                        "mean_agreement": 0.985, "worst_agreement": 0.98}},
        "latency": {"64x64": {"ort-fp32": lat(40.0), "ort-int8": lat(20.0), "pytorch-eager-fp32": lat(100.0)}}},
    "int8_new.json": {"schema": "segedge.int8_bench/1", "command": "python -m benchmarks.bench_int8 --seeds 0,1,2",
                      "environment": {**VNNI_ENV, "cpu_isa": {"class": "vnni", "machine": "x86_64",
                                                              "flags": ["avx2", "avx512_vnni"]},
                                      "int8_target_cpu": "vnni"},
                      "accuracy": {"ov-int8": {"test_miou": 0.4}}, "latency": {}},
    "report.json": {
        "schema": "segedge.report/1", "environment": VNNI_ENV, "source": {"path": "ck"},
        "calibration": {"description": "8 frames", "source": "train.txt", "frames": 8},
        "evaluation": {"kind": "CamVid", "split": "test", "images": 3, "path": "data"},
        "grid": {"menu_prune_rule": "FP32 everywhere, INT8 at the cheap points"},
        "variants": [
            {"name": "ort-fp32", "backend": "onnxruntime", "precision": "fp32", "scale": 1.0, "token_merge": "none",
             "accuracy": {"miou": 0.5, "agreement": 1.0, "drop_points": 0.0}, "cost": {"latency_ms": lat(60.0)}},
            {"name": "ort-int8-s0.5", "backend": "onnxruntime", "precision": "int8", "method": "minmax",
             "scale": 0.5, "token_merge": "2x2", "pareto": True,
             "accuracy": {"miou": 0.45, "agreement": 0.9, "drop_points": 5.0}, "cost": {"latency_ms": lat(15.0)}},
            {"name": "ov-int8", "backend": "openvino", "precision": "int8", "status": "failed", "error": "boom"}],
        "skipped": [{"name": "ort-fp16", "reason": "no kernels"}],
        "recommendation": {"variant": "ort-int8-s0.5", "criterion": "drop <= 9", "command": "segedge quantize X"}},
    "e2e_refine.json": {
        "schema": "segedge.bench/1", "mode": "end-to-end", "artifact": "a", "format": "onnx", "precision": "fp32",
        "head": "refine", "environment": VNNI_ENV, "baseline": {"kind": "pytorch", "checkpoint": "ck"},
        "results": [{"size_hw": [1024, 2048], "network_hw": [512, 1024], "artifact": lat(50.0),
                     "baseline_network_hw": [1024, 2048], "baseline": lat(1000.0), "note": "different work"}]},
    "bench_model.json": {"schema": "segedge.bench/1", "mode": "model", "artifact": "b", "repeats": 7,
                         "results": [{"size_hw": [360, 480], "artifact": lat(25.0)}]},
    "stream.json": {
        "schema": "segedge.stream_bench/1", "command": "python -m benchmarks.stream_bench b --frames 10",
        "environment": VNNI_ENV, "model": {"precision": "int8"},
        "throughput": {"rounds": [{"model_only": {"fps": 40.0}, "file_mode": {"fps": 30.0}}],
                       "median_fps": {"model_only": 40.0, "file_mode": 30.0, "runtime_only": 50.0}},
        "live": {"pace_fps": 30.0, "processed": 9, "frames_read": 10, "latency_ms": {"p50": 50.0}},
        "soak": {"frames": 100, "rss_mib_baseline": 400.0, "rss_mib_end": 404.0}},
    "stream_parallel.json": {
        "schema": "segedge.stream_bench/1", "environment": VNNI_ENV,
        "model": {"precision": "int8", "runtime": "openvino (latency)",
                  "file_mode_runtime": "openvino (throughput, 2 streams)"},
        "throughput": {"rounds": [{"model_only": {"fps": 40.0}, "model_only_parallel": {"fps": 60.0},
                                   "file_mode": {"fps": 30.0}}],
                       "median_fps": {"model_only": 40.0, "model_only_parallel": 60.0, "file_mode": 30.0}}},
    "speed_menu.json": {
        "environment": {**VNNI_ENV, "isa": {"class": "vnni", "machine": "x86_64", "flags": ["avx512_vnni"]}},
        "split": "test", "images": 3, "max_drop": 0.5, "pareto": ["ort-fp32-s0.5"], "recommended": "ort-fp32-s0.5",
        "rows": [{"name": "ort-fp32", "scale": 1.0, "token_merge": "none", "p50_ms": 60.0, "miou": 0.5},
                 {"name": "ort-fp32-s0.5", "scale": 0.5, "token_merge": "none", "p50_ms": 20.0, "miou": 0.499,
                  "drop_points": 0.1, "command": "segedge export ck --scale 0.5"}]},
    "heads.json": {"frames": 2, "rows": [{"frame_hw": [1024, 2048], "classes": 150, "network_hw": [512, 512],
                                          "timing": {"refine": 40.0, "exact": 80.0, "logits_only": 30.0,
                                                     "transformers": 400.0},
                                          "head_ms": {"refine": 10.0, "exact": 50.0},
                                          "agreement": {"refine": {"identical": 0.99999, "ties": 3, "other": 0}}}]},
    "eval.json": {"artifact": "c", "dataset": "camvid", "path": "data", "split": "val", "miou": 0.4,
                  "iou_per_class": {"sky": 0.9, "road": None}, "images": 2},
    "verify.json": {"artifact": "d", "runtime": "onnxruntime", "reference": "fp32", "frames": 4, "agreement": 0.99,
                    "recorded_agreement": 0.991, "min_agreement": 0.98, "margin_points": 0.5, "reasons": [],
                    "passed": True, "machine": {"class": "avx2", "machine": "x86_64", "flags": ["avx2"]}},
    "peers.json": {
        "schema": "segedge.peers_bench/1", "command": "python -m benchmarks.bench_peers --every 10",
        "environment": {**AVX2_ENV, "isa": {"class": "avx2", "machine": "x86_64", "flags": ["avx2"]}},
        "split": "test", "every": 10, "images": 24, "frame_hw": [360, 480], "max_drop": 0.5, "best_peer": "ov-default",
        "export": {"shape": "static 1x3x360x480", "opset": 17}, "calibration": {"frames": 32, "source": "train.txt"},
        "rows": [{"name": "ort-fp32", "kind": "peer", "miou": 0.5, "drop_points": 0.0, "agreement": 1.0,
                  "latency_ms": lat(80.0), "build_seconds": 9.0, "runtime_description": "onnxruntime CPU"},
                 {"name": "ov-default", "kind": "peer", "miou": 0.499, "drop_points": 0.1, "agreement": 0.99,
                  "latency_ms": lat(60.0)},
                 {"name": "nncf-int8", "kind": "peer", "miou": 0.1, "drop_points": 40.0, "agreement": 0.25,
                  "latency_ms": lat(30.0)},
                 {"name": "ours", "kind": "ours", "miou": 0.498, "latency_ms": lat(20.0)}]},
    "peers_pauses.json": {
        "schema": "segedge.peers_bench/1", "environment": AVX2_ENV, "best_peer": "ov-default",
        "timing": {"pauses_ms": [100.0, 33.0, 0.0], "primary_pause_ms": 100.0},
        "rows": [{"name": "ov-default", "kind": "peer", "latency_ms": lat(60.0),
                  "latency_by_pause_ms": {"100": lat(60.0), "33": lat(58.0), "0": lat(56.0)}},
                 {"name": "ours", "kind": "ours", "latency_ms": lat(20.0),
                  "latency_by_pause_ms": {"100": lat(20.0), "33": lat(16.0)}}]},
    "mystery.json": {"something": 1},
    "future.json": {"schema": "segedge.future/1"},
}


@pytest.fixture()
def rendered(tmp_path: Path) -> str:
    for name, doc in SYNTHETIC.items():
        (tmp_path / name).write_text(json.dumps(doc))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "report.md").write_text("# the report's own table\n")
    return make_docs.render(tmp_path)


def section(text: str, name: str) -> str:
    start = text.index(f": `{name}`\n")
    end = text.find("\n## ", start)
    return text[start:] if end < 0 else text[start:end]


def test_committed_doc_is_what_the_generator_writes(capsys):
    """Fails when docs/BENCHMARKS.md was edited by hand or a JSON in docs/benchmarks/ changed without a regenerate:
    run `python -m benchmarks.make_docs`."""
    assert make_docs.main(["--check"]) == 0, capsys.readouterr()
    text = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    for path in sorted((ROOT / "docs" / "benchmarks").glob("*.json")):
        assert f"`{path.name}`" in text, f"{path.name} is not in docs/BENCHMARKS.md"


def test_check_fails_on_a_stale_file_and_write_fixes_it(tmp_path: Path):
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "eval.json").write_text(json.dumps(SYNTHETIC["eval.json"]))
    out = tmp_path / "BENCHMARKS.md"
    args = ["--json-dir", str(tmp_path / "json"), "--output", str(out)]
    assert make_docs.main([*args, "--check"]) == 1  # missing
    out.write_text("# typed by hand\n")
    assert make_docs.main([*args, "--check"]) == 1
    assert make_docs.main(args) == 0
    assert make_docs.main([*args, "--check"]) == 0


def test_every_kind_is_recognised():
    kinds = {name: make_docs.kind_of(doc) for name, doc in SYNTHETIC.items()}
    assert kinds == {"int8_old.json": "int8", "int8_new.json": "int8", "report.json": "report",
                     "e2e_refine.json": "bench-e2e", "bench_model.json": "bench", "stream.json": "stream",
                     "stream_parallel.json": "stream",
                     "speed_menu.json": "speed_menu", "heads.json": "heads", "eval.json": "eval",
                     "verify.json": "verify", "peers.json": "peers", "peers_pauses.json": "peers",
                     "mystery.json": None, "future.json": None}


def test_int8_ratios_robustness_and_isa(rendered: str):
    old = section(rendered, "int8_old.json")
    assert "| ort-int8 | ort-fp32 | 2.00x |" in old  # 40 / 20, computed
    assert "| ort-int8 | pytorch-eager-fp32 | 5.00x |" in old
    assert "| ort-int8 val | 0, 1, 2 | +1.50 | +2.00 | 98.50 | 98.00 |" in old
    assert "| ort-int8 s1 |" in old  # the extra seeds' rows
    assert "CPU class `avx2`; ISA: avx2 (not:" in old  # from cpu_key_flags, class by sdk.core.cpu.cpu_class
    assert "the JSON does not record it" in old
    new = section(rendered, "int8_new.json")
    assert "command: `python -m benchmarks.bench_int8 --seeds 0,1,2`" in new
    assert "CPU class `vnni`" in new and "INT8 made for CPU class `vnni`" in new
    assert "Speed-ups" not in new  # no latency: no ratio table, no error


def test_report_with_menu_axes_and_a_failed_variant(rendered: str):
    s = section(rendered, "report.json")
    assert "| scale | token merge |" in s
    assert "| ort-int8-s0.5 | onnxruntime | int8 | minmax | 0.5 | 2x2 | 45.00 | +5.00 | 90.00 | 15.0 |" in s
    assert "4.00x" in s  # 60 / 15 vs the ORT FP32 variant
    assert "**ort-int8-s0.5**, 4.00x the ORT FP32 p50" in s
    assert "| ov-int8 | openvino | int8 | - | - | - | - | - | - | - | - | - | - | failed; boom |" in s
    assert "- ort-fp16: no kernels" in s and "Speed menu: FP32 everywhere" in s
    assert "Full report (per-class IoU, memory, throughput): `docs/benchmarks/report.md`" in s
    assert "segedge report ck --calib train.txt --num-samples 8 --eval data --eval-split test" in s


def test_bench_end_to_end_refine_head_and_model_only(rendered: str):
    s = section(rendered, "e2e_refine.json")
    assert "| 1024x2048 | 512x1024 | refine | 50.0 |" in s and "| 20.00x |" in s
    assert "different work" in s and "--end-to-end --baseline pytorch ck" in s
    m = section(rendered, "bench_model.json")
    assert "| 360x480 | - | - | 25.0 |" in m and "--size 360 480 --repeats 7" in m
    assert "CPU not recorded; ISA not recorded." in m


def test_stream_speed_menu_heads_eval_verify(rendered: str):
    s = section(rendered, "stream.json")
    assert "| file mode / model only | 0.75x | 0.75x |" in s and "| +1.00 |" in s  # 30 / 40; 404 / 400
    assert "| file mode / model only with 2 workers |" not in s  # recorded only since file mode runs its own runtime
    par = section(rendered, "stream_parallel.json")
    assert "| file mode / model only with 2 workers | 0.50x | 0.50x |" in par  # 30 / 60
    assert "file mode on openvino (throughput, 2 streams)" in par
    assert "command: `python -m benchmarks.stream_bench b --frames 10`" in s and "CPU class `vnni`" in s
    menu = section(rendered, "speed_menu.json")
    assert "| ort-fp32-s0.5 | - | - | 0.5 | none | 49.90 | +0.10 | - | 20.0 | 3.00x | recommended; pareto |" in menu
    assert "Rebuild the recommendation: `segedge export ck --scale 0.5`" in menu
    heads = section(rendered, "heads.json")
    assert "| 1024x2048 | 150 | 512x512 | refine | 40.0 | 10.0 | 400.0 | 10.00x | 99.999 | 3 | 0 |" in heads
    assert "| exact | 80.0 | 50.0 | 400.0 | 5.00x | - |" in heads
    ev = section(rendered, "eval.json")
    assert "| `c` | camvid | val | 2 | 40.00 | - | - |" in ev and "| per class | 90.00 | - |" in ev
    assert "ISA not recorded" in ev and "--split val --json FILE" in ev
    ver = section(rendered, "verify.json")
    assert "| 99.00 | 99.10 | 98.00 | - | True | - |" in ver and "CPU class `avx2`" in ver


def test_peers_ratio_against_the_best_peer_within_budget(rendered: str):
    s = section(rendered, "peers.json")
    assert "best peer within 0.5 points: **ov-default**" in s and "static 1x3x360x480, opset 17" in s
    assert "| ort-fp32 | peer | 50.00 | +0.00 | 100.00 | 80.0 | 81.0 | 0.75x | 9 | onnxruntime CPU |" in s
    assert "| nncf-int8 | peer | 10.00 | +40.00 | 25.00 | 30.0 | 31.0 | 2.00x |" in s  # faster, but not within budget
    assert "| ours | ours | 49.80 | - | - | 20.0 | 21.0 | 3.00x | - | - |" in s  # 60 / 20; missing keys as "-"
    assert "command: `python -m benchmarks.bench_peers --every 10`" in s and "CPU class `avx2`" in s


def test_peers_at_each_idle_protocol(rendered: str):
    s = section(rendered, "peers_pauses.json")
    assert "100 ms idle before each run; `33 ms` columns: 33 ms idle before each run; `0 ms` columns: back to back, " \
           "no idle (how the variants were kept apart: \"Timed:\" under the table)." in s
    assert "| p50 ms, 33 ms idle | x best peer, 33 ms idle | p50 ms, 0 ms idle | x best peer, 0 ms idle |" in s
    assert "| ours | ours | - | - | - | 20.0 | 21.0 | 3.00x | 16.0 | 3.62x | - | - | - | - |" in s  # 58/16; 0 missing


def test_unknown_files_are_listed_not_dropped(rendered: str):
    tail = rendered[rendered.index("## Files not rendered"):]
    assert "`mystery.json`: no renderer for its kind (keys something)" in tail
    assert "`future.json`: no renderer for its kind (schema 'segedge.future/1')" in tail
    assert "`broken.json`: not readable as JSON" in tail
    assert rendered.count("\n## ") == len(SYNTHETIC) - 2 + 2  # every known file + design notes + the list of the rest


def test_every_section_shows_the_machine():
    text = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    sections = text.split("\n## ")[1:]
    assert sections and all("Machine: " in s for s in sections
                            if not s.startswith(("Files not rendered", docs_design.TITLE)))


def test_multi_stream_ratios_are_computed_from_the_json():
    from benchmarks.docs_sections import render_multi_stream

    d = {"schema": "segedge.multi_stream_bench/1", "frames_per_source": 60, "rounds": 2, "write_outputs": True,
         "files": {"out/a": [{"sources": 4, "multi": {"fps": 26.0, "per_source_fps": [6.5, 6.5],
                                                      "latency_p95_ms": [300.0, 310.0], "cpu_ms_per_frame": 70.0},
                              "separate": {"fps": 13.0}, "model": {"fps": 28.0}, "model_2threads": {"fps": 32.5}}]},
         "live": {"out/a": [{"camera_fps": 10, "sources": 4, "slowest_vs_mean": 0.96,
                             "multi": {"per_source_fps": [9.6, 10.0], "latency_p95_ms": [120.0, 140.0],
                                       "latency_p50_ms": [80.0, 90.0], "dropped": [3, 5]},
                             "model": {"batch_p50_ms": 100.0}, "p95_vs_batch_latency": 1.4}]},
         "reconnect": {"down_s": 3, "within_5_s": 5, "of": 5,
                       "tries": [{"read_again_after_return_s": 2.4, "other_camera_frames_during_gap": 40}]}}
    text = "\n".join(render_multi_stream(d))
    assert "| 4 | 26.00 | 13.00 | 28.00 | 32.50 | 2.00x | 0.93x | 0.80x | 6.50 | 310 | 70.0 | - |" in text
    assert "| 4 x 10 fps | 9.60-10.00 | 9.80 | 0.96 | 90 | 140 | 3-5 | 100 | 1.40 |" in text
    assert "in 5 of 5 tries (s after its return: 2.4)" in text and "during the gap: 40" in text
    assert make_docs.kind_of(d) == "multi_stream"


TIMING_KINDS = ("int8", "report", "speed_menu", "peers", "bench-e2e", "bench", "heads", "stream", "multi_stream",
                "triton", "calib_memory")


def test_every_timing_table_says_how_its_variants_were_isolated():
    """Issue 28: under every timing table, how its variants were kept apart while timed; in the committed doc too."""
    from benchmarks.docs_isolation import isolation_line

    text = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    for path in sorted((ROOT / "docs" / "benchmarks").glob("*.json")):
        d = json.loads(path.read_text())
        kind = make_docs.kind_of(d)
        if kind in TIMING_KINDS:
            line = isolation_line(kind, d)
            assert line and line.startswith("Timed: ") and line in section(text, path.name), path.name
    for name, d in SYNTHETIC.items():  # older files: what the code did then, said plainly
        kind = make_docs.kind_of(d)
        if kind in ("int8", "report", "speed_menu", "peers", "heads") or name == "e2e_refine.json":
            assert "in one process, alternating run by run" in isolation_line(kind, d), name
    assert "one variant, alone in its process" in isolation_line("bench", SYNTHETIC["bench_model.json"])
    assert isolation_line("eval", SYNTHETIC["eval.json"]) is None  # no timing table, no line


def test_a_recorded_isolation_is_printed_as_recorded():
    from benchmarks.docs_isolation import isolation_line
    from sdk.timing.isolated import isolation

    how = isolation(rounds=3, runs=10, warmup=3)
    for kind, d in (("int8", {"timing": {"isolation": how}}), ("report", {"latency_input": {"isolation": how}}),
                    ("bench", {"isolation": how, "pause_s": 0.1})):
        assert isolation_line(kind, d) == f"Timed: {how['text']}.", kind
    peers = isolation_line("peers", {"timing": {"isolation": how, "pauses_ms": [100.0, 0.0]}})
    assert "own fresh process per round, 3 alternating rounds" in peers and "one such pass per idle time" in peers

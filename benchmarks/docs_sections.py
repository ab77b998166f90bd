"""The per-kind section renderers of docs/BENCHMARKS.md (see benchmarks/make_docs.py): each takes one benchmark
JSON document and returns the Markdown lines of its tables. Every field is read with a default, so a document of a
known kind missing some keys still renders (with "-").
"""
from __future__ import annotations

from typing import Callable

from benchmarks.docs_common import dig, fmt, hw, is_num, pct, ratio, table
from benchmarks.docs_streams import render_multi_stream, render_stream, render_triton

INT8_PAIRS = (("ort-int8", "ort-fp32"), ("ort-int8", "ort-fp32-portable"), ("ort-fp32", "ort-fp32-portable"),
              ("ov-int8", "ov-default"), ("ov-int8", "ov-f32"), ("ort-int8", "pytorch-eager-fp32"),
              ("ov-int8", "pytorch-eager-fp32"))
INT8_WHAT = {"ort-fp32": "ONNX Runtime FP32, onnxruntime graph", "ort-fp32-portable": "ONNX Runtime FP32, portable "
             "graph", "ort-int8": "ONNX Runtime INT8", "trt-qdq (in ORT)": "TensorRT Q/DQ, scored in ONNX Runtime",
             "ov-f32": "OpenVINO f32 hint", "ov-default": "OpenVINO default precision (bf16 where the CPU has it)",
             "ov-int8": "OpenVINO NNCF INT8", "pytorch-eager-fp32": "PyTorch eager FP32 (latency only)"}


# -------------------------------------------------------------------------------------------------- the renderers
def render_int8(d: dict) -> list[str]:
    acc, lat = d.get("accuracy") or {}, d.get("latency") or {}
    names = list(acc) + [n for size in lat.values() for n in size if n not in acc]
    names = list(dict.fromkeys(names))
    splits = list(dict.fromkeys(k[: -len("_miou")] for r in acc.values() for k in r if k.endswith("_miou")))
    build = d.get("build_seconds") or {}
    head = ["variant", "what"] + [f"{s} {c}" for s in splits for c in ("mIoU %", "drop pt", "agree %")]
    head += [f"{size} {p}" for size in lat for p in ("p50", "p90")] + ["build s"]
    rows = []
    for n in names:
        r = acc.get(n, {})
        row = [n, INT8_WHAT.get(n, "-")]
        for s in splits:
            row += [pct(r.get(f"{s}_miou")), fmt(r.get(f"{s}_drop_points"), "+.2f"), pct(r.get(f"{s}_agreement"))]
        row += [fmt(dig(lat, size, n, p)) for size in lat for p in ("p50_ms", "p90_ms")]
        rows.append(row + [fmt(r.get("build_s", build.get(n)), ".0f")])
    out = table(head, rows)
    pairs = [(a, b) for a, b in INT8_PAIRS if any(a in s and b in s for s in lat.values())]
    if pairs:
        out += ["Speed-ups: the second variant's p50 / the first's, measured in the same run:", ""]
        out += table(["variant", "vs"] + list(lat), [[a, b] + [ratio(dig(lat, s, b, "p50_ms"),
                                                                     dig(lat, s, a, "p50_ms")) for s in lat]
                                                      for a, b in pairs])
    rob = d.get("robustness") or {}
    if rob:
        out += ["Calibration-subset robustness (the INT8 variants rebuilt from subsets drawn with each seed):", ""]
        out += table(["variant split", "seeds", "mean drop pt", "worst drop pt", "mean agree %", "worst agree %"],
                     [[k, ", ".join(str(s) for s in v.get("seeds") or []) or "-",
                       fmt(v.get("mean_drop_points"), "+.2f"),
                       fmt(v.get("worst_drop_points"), "+.2f"), pct(v.get("mean_agreement")),
                       pct(v.get("worst_agreement"))] for k, v in rob.items()])
    extra = [f"Calibration: {d['calibration']}." if d.get("calibration") else None,
             f"INT8 made for CPU class `{dig(d, 'environment', 'int8_target_cpu')}`."
             if dig(d, "environment", "int8_target_cpu") else None]
    return [x for x in extra if x] + ([""] if any(extra) else []) + out


def _report_ref(variants: list[dict]) -> dict | None:
    return next((v for v in variants if v.get("backend") == "onnxruntime" and v.get("precision") == "fp32"
                 and v.get("scale", 1.0) == 1.0 and v.get("token_merge", "none") == "none"), None)


def render_report(d: dict) -> list[str]:
    variants = [v for v in d.get("variants") or [] if isinstance(v, dict)]
    ref = _report_ref(variants)
    ref_p50 = dig(ref, "cost", "latency_ms", "p50_ms")
    rec = d.get("recommendation") or {}
    menu = any(v.get("scale", 1.0) != 1.0 or v.get("token_merge", "none") != "none" for v in variants)
    head = ["variant", "backend", "precision", "method"] + (["scale", "token merge"] if menu else [])
    head += ["mIoU %", "drop pt", "agree %", "p50 ms", "p90 ms", "x ORT FP32", "build s", "notes"]
    rows = []
    for v in variants:
        p50 = dig(v, "cost", "latency_ms", "p50_ms")
        tags = (["recommended"] if v.get("name") == rec.get("variant") else []) + (["pareto"] if v.get("pareto")
                                                                                 else [])
        status = [str(v["status"])] if v.get("status") not in (None, "built") else []
        notes = status + tags + [str(n) for n in v.get("notes") or []] + ([str(v["error"])] if v.get("error") else [])
        row = [str(v.get("name", "-")), str(v.get("backend", "-")), str(v.get("precision", "-")),
               str(v.get("method") or "-")] + ([fmt(v.get("scale"), "g"), str(v.get("token_merge", "-"))]
                                               if menu else [])
        rows.append(row + [pct(dig(v, "accuracy", "miou")), fmt(dig(v, "accuracy", "drop_points"), "+.2f"),
                           pct(dig(v, "accuracy", "agreement")), fmt(p50), fmt(dig(v, "cost", "latency_ms", "p90_ms")),
                           ratio(ref_p50, p50), fmt(v.get("build_seconds"), ".0f"), "; ".join(notes)])
    ev, cal, ph = d.get("evaluation") or {}, d.get("calibration") or {}, d.get("phases_seconds") or {}
    lines = [f"Model `{dig(d, 'source', 'path') or '-'}` ({dig(d, 'model', 'variant') or '-'}); calibration: "
             f"{cal.get('description', '-')}; evaluation: {ev.get('kind', '-')} {ev.get('split', '-')}, "
             f"{ev.get('images', '-')} images; frames {hw(dig(d, 'latency_input', 'frame_hw'))}, "
             f"{dig(d, 'latency_input', 'options', 'repeats') or '-'} timed runs per variant. Wall time "
             f"{fmt(ph.get('total_s'), '.0f')} s (build {fmt(ph.get('build_s'), '.0f')} s, evaluation "
             f"{fmt(ph.get('evaluate_s'), '.0f')} s, timing {fmt(ph.get('cost_s'), '.0f')} s).", ""]
    if rec.get("variant"):
        v = next((x for x in variants if x.get("name") == rec["variant"]), {})
        lines += [f"Recommendation ({rec.get('criterion', '-')}): **{rec['variant']}**, "
                  f"{ratio(ref_p50, dig(v, 'cost', 'latency_ms', 'p50_ms'))} the ORT FP32 p50, mIoU drop "
                  f"{fmt(dig(v, 'accuracy', 'drop_points'), '+.2f')} points; rebuild: `{rec.get('command', '-')}`", ""]
    if dig(d, "grid", "menu_prune_rule"):
        lines += [f"Speed menu: {d['grid']['menu_prune_rule']}", ""]
    lines += table(head, rows)
    skipped = [s for s in d.get("skipped") or [] if isinstance(s, dict)]
    if skipped:
        lines += ["Not in the grid:", ""] + [f"- {s.get('name', '-')}: {s.get('reason', '-')}" for s in skipped] + [""]
    return lines


def render_bench(d: dict) -> list[str]:
    base = d.get("baseline") if isinstance(d.get("baseline"), dict) else None
    head = ["frame", "network", "head", "p50 ms", "p90 ms", "p99 ms", "img/s"]
    head += ["baseline network", "baseline p50 ms", "baseline p90 ms", "ratio p50"] if base else []
    agree = any("agreement_with_baseline_pct" in r for r in d.get("results") or [])
    head += ["agreement %"] if agree else []
    rows, notes = [], []
    for r in d.get("results") or []:
        a = r.get("artifact") or {}
        row = [hw(r.get("size_hw")), hw(r.get("network_hw")), str(r.get("head") or d.get("head") or "-"),
               fmt(a.get("p50_ms")), fmt(a.get("p90_ms")), fmt(a.get("p99_ms")), fmt(a.get("throughput_fps"))]
        if base:
            b = r.get("baseline") or {}
            row += [hw(r.get("baseline_network_hw")), fmt(b.get("p50_ms")), fmt(b.get("p90_ms")),
                    ratio(b.get("p50_ms"), a.get("p50_ms"))]
        if agree:
            row.append(fmt(r.get("agreement_with_baseline_pct"), ".3f"))
        rows.append(row)
        if r.get("note"):
            notes.append(f"Note ({hw(r.get('size_hw'))}): {r['note']}.")
    lines = [f"`{d.get('artifact', '-')}` ({d.get('format', '-')} {d.get('precision', '-')}) on "
             f"{d.get('runtime', '-')}; {d.get('what_is_timed', d.get('mode', '-'))}; batch {d.get('batch', '-')}, "
             f"{d.get('repeats', '-')} runs after {d.get('warmup', '-')} warm-up."]
    if d.get("frame"):
        lines.append(f"Frame: {d['frame']} (resized bilinearly to each frame size).")
    if base:
        lines.append(f"Baseline: {base.get('description', '-')}; {base.get('post_processing', '-')}.")
    busy = dig(d, "other_load", "busy_pct")
    if is_num(busy):
        lines.append(f"Other processes kept {busy:.0f}% of the CPUs busy just before timing.")
    return lines + [""] + table(head, rows) + notes + ([""] if notes else [])


def bench_command(d: dict) -> str:
    sizes = " ".join(f"--size {r['size_hw'][0]} {r['size_hw'][1]}" for r in d.get("results") or []
                     if isinstance(r.get("size_hw"), list) and len(r["size_hw"]) == 2)
    cmd = f"segedge bench {d.get('artifact', 'ARTIFACT')} {sizes} --repeats {d.get('repeats', 50)} " \
          f"--warmup {d.get('warmup', 5)}"
    if d.get("mode") == "end-to-end":
        cmd += " --end-to-end"
    if dig(d, "baseline", "checkpoint"):
        cmd += f" --baseline pytorch {d['baseline']['checkpoint']}"
    if d.get("frame") and not str(d["frame"]).startswith("synthetic"):
        cmd += f" --frame {d['frame']}"
    return cmd + " --json FILE"


def render_speed_menu(d: dict) -> list[str]:
    rows_in = [r for r in d.get("rows") or [] if isinstance(r, dict)]
    ref = next((r for r in rows_in if r.get("name") == "ort-fp32"), None)
    front = set(d.get("pareto") or [])
    rows = []
    for r in sorted(rows_in, key=lambda r: r.get("p50_ms") if is_num(r.get("p50_ms")) else float("inf")):
        x = ratio(ref.get("p50_ms"), r.get("p50_ms")) if ref else fmt(r.get("speedup_vs_ort_fp32"), ".2f")
        tags = (["recommended"] if r.get("name") == d.get("recommended") else []) + (["pareto"] if r.get("name")
                                                                                     in front else [])
        rows.append([str(r.get("name", "-")), str(r.get("backend", "-")), str(r.get("precision", "-")),
                     fmt(r.get("scale"), "g"), str(r.get("token_merge", "-")), pct(r.get("miou")),
                     fmt(r.get("drop_points"), "+.2f"), pct(r.get("agreement")), fmt(r.get("p50_ms")), x,
                     "; ".join(tags + ([str(r["verdict"])] if r.get("verdict") else []))])
    lines = [f"{d.get('split', '-')} split, {d.get('images', '-')} images, frames {hw(d.get('frame_hw'))}; "
             f"recommendation within {fmt(d.get('max_drop'), 'g')} points: **{d.get('recommended') or 'none'}**.", ""]
    lines += table(["variant", "backend", "precision", "scale", "token merge", "mIoU %", "drop pt", "agree %",
                    "p50 ms", "x ORT FP32", "notes"], rows)
    best = next((r for r in rows_in if r.get("name") == d.get("recommended")), None)
    if best and best.get("command"):
        lines += [f"Rebuild the recommendation: `{best['command']}`", ""]
    return lines


def render_peers(d: dict) -> list[str]:
    rows_in = [r for r in d.get("rows") or [] if isinstance(r, dict)]
    best = next((r for r in rows_in if r.get("name") == d.get("best_peer")), None)
    rows = [[str(r.get("name", "-")), str(r.get("kind", "-")), pct(r.get("miou")), fmt(r.get("drop_points"), "+.2f"),
             pct(r.get("agreement")), fmt(dig(r, "latency_ms", "p50_ms")), fmt(dig(r, "latency_ms", "p90_ms")),
             ratio(dig(best, "latency_ms", "p50_ms"), dig(r, "latency_ms", "p50_ms")),
             fmt(r.get("build_seconds"), ".0f"), str(r.get("runtime_description", "-"))] for r in rows_in]
    extra = [k for k in (f"{v:g}" for v in dig(d, "timing", "pauses_ms") or [] if is_num(v))][1:]
    for i, r in enumerate(rows_in):  # the other idle protocols, where recorded: p50 and the ratio to the best peer
        for k in extra:
            rows[i][-2:-2] = [fmt(dig(r, "latency_by_pause_ms", k, "p50_ms")),
                              ratio(dig(best, "latency_by_pause_ms", k, "p50_ms"),
                                    dig(r, "latency_by_pause_ms", k, "p50_ms"))]
    ex, cal = d.get("export") or {}, d.get("calibration") or {}
    head = (f"CamVid {d.get('split', '-')}, every {fmt(d.get('every'), 'd')} ({fmt(d.get('images'), 'd')} images), "
            f"frames {hw(d.get('frame_hw'))}; plain export {ex.get('shape', '-')}, opset {fmt(ex.get('opset'), 'd')}; "
            f"calibration {fmt(cal.get('frames'), 'd')} frames of `{cal.get('source', '-')}`; best peer within "
            f"{fmt(d.get('max_drop'), 'g')} points: **{d.get('best_peer') or 'none'}**.")
    lines = [head, ""]
    if extra:
        primary = fmt(dig(d, "timing", "primary_pause_ms"), "g")
        lines += [f"p50/p90 and x best peer: {primary} ms idle before each run; "
                  + "; ".join(f"`{k} ms` columns: " + ("back to back, no idle" if float(k) == 0 else
                                                     f"{k} ms idle before each run") for k in extra)
                  + " (how the variants were kept apart: \"Timed:\" under the table).", ""]
    cols = [c for k in extra for c in (f"p50 ms, {k} ms idle", f"x best peer, {k} ms idle")]
    return lines + table(["variant", "kind", "mIoU %", "drop pt", "agree %", "p50 ms", "p90 ms", "x best peer"]
                         + cols + ["build s", "runs on"], rows)


def render_heads(d: dict) -> list[str]:
    rows = []
    for r in (x for x in d.get("rows") or [] if isinstance(x, dict)):
        t, hm, agr = r.get("timing") or {}, r.get("head_ms") or {}, r.get("agreement") or {}
        for h in hm or [k for k in t if k not in ("logits_only", "transformers")]:
            rows.append([hw(r.get("frame_hw")), fmt(r.get("classes"), "d"), hw(r.get("network_hw")), h,
                         fmt(t.get(h)), fmt(hm.get(h)), fmt(t.get("transformers")),
                         ratio(t.get("transformers"), t.get(h)), fmt(100 * dig(agr, h, "identical"), ".3f")
                         if is_num(dig(agr, h, "identical")) else "-", fmt(dig(agr, h, "ties"), "d"),
                         fmt(dig(agr, h, "other"), "d")])
    return [f"{fmt(d.get('frames'), 'd')} frames for the agreement; timing on the first.", ""] + table(
        ["frame", "classes", "network", "head", "ours p50 ms", "head ms", "transformers p50 ms", "ratio",
         "= exact %", "ties", "other"], rows)


def render_eval(d: dict) -> list[str]:
    ious = d.get("iou_per_class") or {}
    lines = table(["artifact", "dataset", "split", "images", "mIoU %", "pixel acc %", "agree %"],
                  [[f"`{d.get('artifact', '-')}`", str(d.get("dataset", "-")), str(d.get("split", "-")),
                    fmt(d.get("images"), "d"), pct(d.get("miou")), pct(d.get("pixel_accuracy")),
                    pct(d.get("agreement"))]])
    if isinstance(ious, dict) and ious:
        lines += table(["IoU %"] + list(ious), [["per class"] + [pct(v) for v in ious.values()]])
    return lines


def render_verify(d: dict) -> list[str]:
    return table(["artifact", "runtime", "reference", "frames", "agree %", "recorded %", "min %", "mIoU %",
                  "passed", "reasons"],
                 [[f"`{d.get('artifact', '-')}`", str(d.get("runtime", "-")), str(d.get("reference", "-")),
                   fmt(d.get("frames"), "d"), pct(d.get("agreement")), pct(d.get("recorded_agreement")),
                   pct(d.get("min_agreement")), pct(d.get("miou")), str(d.get("passed", "-")),
                   "; ".join(str(x) for x in d.get("reasons") or []) or "-"]])


def render_calib_memory(d: dict) -> list[str]:
    rows = [[fmt(r.get("frames"), "d"), hw(r.get("frame_hw")), str(r.get("backend", "-")), str(r.get("method", "-")),
             fmt(r.get("calib_slice_frames"), "d"), fmt(r.get("peak_rss_mib"), "d"), fmt(r.get("wall_s"), ".0f"),
             "yes" if r.get("within_target") else "no"] for r in d.get("rows") or [] if isinstance(r, dict)]
    return [f"Peak resident memory of one `segedge quantize` process each (the kernel's ru_maxrss), calibration "
            f"budget `--calib-memory-mib {fmt(d.get('calib_memory_mib'), 'd')}`, target under "
            f"{fmt(d.get('target_mib'), 'd')} MiB.", ""] + table(
        ["frames", "frame", "backend", "method", "slice", "peak MiB", "wall s", "within target"], rows)


def _avx2_mode_line(d: dict, mode: str, v: dict) -> str:
    seen = dig(v, "isa", "numpy_cpu_features_via_cpuid") or []
    sat = dig(v, "probe", "saturates_8bit_weights") or {}
    how = f"`{v['wrapper']}`" if v.get("wrapper") else ("cpuid masked by `LD_PRELOAD`" if v.get("env") else "as is")
    isa = ", ".join([("AVX-512" if any(f.startswith("AVX512") for f in seen) else "no AVX-512"),
                     ("VNNI" if any("VNNI" in f for f in seen) else "no VNNI")]) if seen else "not recorded"
    yn = {True: "yes", False: "no"}
    return (f"- `{mode}` ({how}): cpuid shows {isa}; 8-bit u8 x s8 probe saturates: ONNX Runtime "
            f"{yn.get(sat.get('onnxruntime'), '-')}, OpenVINO {yn.get(sat.get('openvino'), '-')}; "
            f"{fmt(dig(d, 'images', mode), 'd')} images")


def render_int8_avx2_emulated(d: dict) -> list[str]:
    rows_in = [r for r in d.get("rows") or [] if isinstance(r, dict)]
    modes = d.get("modes") if isinstance(d.get("modes"), dict) else {}
    by = {(r.get("artifact"), r.get("mode")): r for r in rows_in}
    tgt = d.get("target") or {}
    max_drop, min_agree = tgt.get("max_drop_points", 0.3), tgt.get("min_agreement", 0.99)
    # mIoU drop on a handful of images (the qemu mode) is noise: shown from 30 images up
    cols = {m: ("agree %", "drop pt") if (dig(d, "images", m) or 0) >= 30 else ("agree %",) for m in modes}
    head = ["artifact", "target", "recipe"] + [f"{m} {c}" for m in modes for c in cols[m]]
    head += ["qemu = cpuid-masked", f"AVX2: drop <= {fmt(max_drop, 'g')}, agree >= {pct(min_agree)}"]
    rows = []
    for n in dict.fromkeys(r.get("artifact") for r in rows_in):
        first = next(r for r in rows_in if r.get("artifact") == n)
        row = [str(n), str(first.get("target_cpu") or first.get("quantization_target") or first.get("precision")),
               str(first.get("recipe") or "-")]
        row += [pct(dig(by, (n, m), "agreement")) if c == "agree %" else fmt(dig(by, (n, m), "drop_points"), "+.2f")
                for m in modes for c in cols[m]]
        q = by.get((n, "qemu")) or {}
        same = q.get("identical_to_cpuid_masked")
        row.append("identical" if same is True else (pct(q.get("agreement_with_cpuid_masked")) if same is False
                                                     else "-"))
        avx2 = by.get((n, "cpuid-masked")) or q
        ok = is_num(avx2.get("drop_points")) and is_num(avx2.get("agreement")) and (
            avx2["drop_points"] <= max_drop and avx2["agreement"] >= min_agree)
        rows.append(row + [("yes" if ok else "no") if avx2 else "-"])
    return [_avx2_mode_line(d, m, v) for m, v in modes.items() if isinstance(v, dict)] + [""] + table(head, rows)


TITLES = {"int8": "INT8 per backend", "report": "Report", "speed_menu": "Speed menu",
          "bench-e2e": "End to end vs the transformers pipeline", "heads": "Mask heads end to end",
          "stream": "Streams", "bench": "Model-only latency", "eval": "Evaluation", "verify": "Verification",
          "peers": "Peers' documented defaults", "calib_memory": "Calibration memory",
          "int8_avx2_emulated": "INT8 on an AVX2-only CPU (emulated)", "multi_stream": "Many cameras, one pipeline",
          "triton": "Serving on Triton"}
RENDER: dict[str, Callable[[dict], list[str]]] = {
    "int8": render_int8, "report": render_report, "speed_menu": render_speed_menu, "bench-e2e": render_bench,
    "heads": render_heads, "stream": render_stream, "bench": render_bench, "eval": render_eval,
    "verify": render_verify, "peers": render_peers, "calib_memory": render_calib_memory,
    "int8_avx2_emulated": render_int8_avx2_emulated, "multi_stream": render_multi_stream,
    "triton": render_triton}


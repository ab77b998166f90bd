"""The renderers of docs/BENCHMARKS.md's streaming and serving sections (see benchmarks/make_docs.py): one stream
(``stream_bench``), many cameras (``multi_stream_bench``) and Triton (``triton_bench``). Every field is read with a
default, so a document missing some keys still renders (with "-").
"""
from __future__ import annotations

from typing import Any

from benchmarks.docs_common import dig, fmt, hw, is_num, ratio, table


# -------------------------------------------------------------------------------------------------- the renderers
def render_stream(d: dict) -> list[str]:
    t, model = d.get("throughput") or {}, d.get("model") or {}
    rounds = [r for r in t.get("rounds") or [] if isinstance(r, dict)]
    med = t.get("median_fps") or {}
    labels = {"runtime_only": "runtime only (infer), FPS", "model_only": "model only (Segmenter), FPS",
              "model_only_parallel": "model only with 2 workers as file mode runs it, FPS",
              "file_mode": "file mode end to end, FPS"}
    if not any("model_only_parallel" in r for r in rounds):  # recorded since file mode runs its own runtime
        del labels["model_only_parallel"]
    rows = [[label] + [fmt(dig(r, k, "fps"), ".2f") for r in rounds] + [fmt(med.get(k), ".2f")]
            for k, label in labels.items()]
    if any(dig(r, "file_mode", "cpu_ms_per_frame") is not None for r in rounds):  # recorded since the CPU budget
        rows += [[f"{label.split(',')[0]}, CPU ms per frame"] + [fmt(dig(r, k, "cpu_ms_per_frame"), ".1f")
                                                                for r in rounds] + ["-"] for k, label in labels.items()]
        rows += [["other processes during file mode, cores"]
                 + [fmt(dig(r, "file_mode", "other_load_cores"), ".2f") for r in rounds] + ["-"]]
    rows.append(["file mode / model only"] + [ratio(dig(r, "file_mode", "fps"), dig(r, "model_only", "fps"))
                                              for r in rounds] + [ratio(med.get("file_mode"), med.get("model_only"))])
    if "model_only_parallel" in labels:
        rows.append(["file mode / model only with 2 workers"]
                    + [ratio(dig(r, "file_mode", "fps"), dig(r, "model_only_parallel", "fps")) for r in rounds]
                    + [ratio(med.get("file_mode"), med.get("model_only_parallel"))])
    rows.append(["file mode / runtime only"] + [ratio(dig(r, "file_mode", "fps"), dig(r, "runtime_only", "fps"))
                                                for r in rounds] + [ratio(med.get("file_mode"),
                                                                          med.get("runtime_only"))])
    head, upsample = model.get("head", "-"), model.get("upsample", "-")
    lines = [f"`{d.get('artifact', '-')}` ({model.get('precision', '-')}, {head} head"
             f"{'' if upsample == head else ' ' + str(upsample)}, network {hw(model.get('network_hw'))}) on "
             f"{model.get('runtime', '-')}"
             f"{'; file mode on ' + str(model['file_mode_runtime']) if model.get('file_mode_runtime') else ''}; "
             f"video `{d.get('video', '-')}` {hw(d.get('frame_hw'))}, batch {d.get('batch_size', '-')}.", ""]
    lines += table(["throughput"] + [f"round {i + 1}" for i in range(len(rounds))] + ["median"], rows)
    lv = d.get("live")
    if isinstance(lv, dict):
        lat = lv.get("latency_ms") or {}
        lines += table(["live, paced at", "processed", "FPS", "dropped", "latency p50 ms", "p90", "p99", "max",
                        "p50 first third", "p50 last third"],
                       [[f"{fmt(lv.get('pace_fps'), 'g')} fps", f"{fmt(lv.get('processed'), 'd')} of "
                         f"{fmt(lv.get('frames_read'), 'd')}", fmt(lv.get("processed_fps"), ".2f"),
                         fmt(lv.get("dropped"), "d"), fmt(lat.get("p50")), fmt(lat.get("p90")), fmt(lat.get("p99")),
                         fmt(lat.get("max")), fmt(lv.get("latency_p50_first_third_ms")),
                         fmt(lv.get("latency_p50_last_third_ms"))]])
    s = d.get("soak")
    if isinstance(s, dict):
        b, e = s.get("rss_mib_baseline"), s.get("rss_mib_end")
        growth = fmt(100 * (e - b) / b, "+.2f") if is_num(b) and is_num(e) and b else "-"
        lines += table(["soak frames", "FPS", "RSS after warm-up MiB", "RSS end MiB", "RSS max MiB", "growth %"],
                       [[fmt(s.get("frames"), "d"), fmt(s.get("fps"), ".2f"), fmt(b), fmt(e),
                         fmt(s.get("rss_mib_max")), growth]])
    return lines


def _span(values: Any, spec: str = ".2f") -> str:
    """min-max of a list of numbers ("-" where none)."""
    nums = [v for v in values or [] if is_num(v)]
    if not nums:
        return "-"
    lo, hi = min(nums), max(nums)
    return fmt(lo, spec) if fmt(lo, spec) == fmt(hi, spec) else f"{fmt(lo, spec)}-{fmt(hi, spec)}"


def _max(values: Any) -> Any:
    nums = [v for v in values or [] if is_num(v)]
    return max(nums) if nums else None


def render_multi_stream(d: dict) -> list[str]:
    lines = [f"Sources: {d.get('clip', '-')}; file runs: {fmt(d.get('frames_per_source'), 'd')} frames per source, "
             f"{fmt(d.get('rounds'), 'd')} alternating rounds (medians), per-source mp4s "
             f"{'written' if d.get('write_outputs') else 'not written'}. Wall time {fmt(d.get('wall_s'), '.0f')} s.",
             ""]
    forms = ("requests_throughput", "requests_latency", "sequential_latency", "reshaped_static", "reshaped_dynamic")
    for art, rows in (d.get("openvino_batch_forms") or {}).items():
        lines += [f"OpenVINO, one batch of N preprocessed frames through `{art}` (FPS; \"requests\": one infer "
                  "request per frame, started together, what the runtime ships; \"reshaped\": the IR's batch made "
                  "N, or dynamic, one request):", ""]
        body = [[fmt(r.get("batch"), "d")] + [fmt(dig(r, f, "fps"), ".2f") for f in forms]
                for r in rows if isinstance(r, dict)]
        lines += table(["batch", "requests, throughput mode", "requests, latency mode", "one after another",
                        "reshaped static", "reshaped dynamic"], body)
    for art, rows in (d.get("files") or {}).items():
        lines += [f"Files, `{art}`:", ""]
        body = []
        for r in rows if isinstance(rows, list) else []:
            m, s, o, o2 = (r.get(k) or {} for k in ("multi", "separate", "model", "model_2threads"))
            body.append([fmt(r.get("sources"), "d"), fmt(m.get("fps"), ".2f"), fmt(s.get("fps"), ".2f"),
                         fmt(o.get("fps"), ".2f"), fmt(o2.get("fps"), ".2f"), ratio(m.get("fps"), s.get("fps")),
                         ratio(m.get("fps"), o.get("fps")), ratio(m.get("fps"), o2.get("fps")),
                         _span(m.get("per_source_fps")), fmt(_max(m.get("latency_p95_ms")), ".0f"),
                         fmt(m.get("cpu_ms_per_frame"), ".1f"), fmt(s.get("cpu_ms_per_frame_with_startup"), ".1f")])
        lines += table(["sources", "one pipeline FPS", "N processes FPS", "model only FPS", "model only, 2 threads",
                        "one / N processes", "one / model only", "one / model only 2 threads",
                        "per-source FPS", "p95 latency ms (worst source)", "CPU ms/frame (one, in run)",
                        "CPU ms/frame (N processes, with start-up)"], body)
    for art, rows in (d.get("live") or {}).items():
        lines += [f"Live RTSP cameras, `{art}`:", ""]
        body = []
        for r in rows if isinstance(rows, list) else []:
            m, s, o = (r.get(k) or {} for k in ("multi", "separate", "model"))
            per = [v for v in m.get("per_source_fps") or [] if is_num(v)]
            sep = [v for v in s.get("per_source_fps") or [] if is_num(v)]
            body.append([f"{fmt(r.get('sources'), 'd')} x {fmt(r.get('camera_fps'), 'd')} fps",
                         _span(per), fmt(sum(per) / len(per), ".2f") if per else "-",
                         fmt(r.get("slowest_vs_mean"), ".2f"), fmt(_max(m.get("latency_p50_ms")), ".0f"),
                         fmt(_max(m.get("latency_p95_ms")), ".0f"), _span(m.get("dropped"), "d"),
                         fmt(o.get("batch_p50_ms"), ".0f"), fmt(r.get("p95_vs_batch_latency"), ".2f"),
                         _span(sep) if sep else "-", fmt(_max(s.get("latency_p95_ms")), ".0f") if sep else "-"])
        lines += table(["cameras", "per-camera FPS", "mean", "slowest / mean", "p50 ms (worst)", "p95 ms (worst)",
                        "dropped per camera", "model batch p50 ms", "p95 / batch", "N processes: per-camera FPS",
                        "N processes: p95 ms"], body)
        variants = []  # the same cameras in the same run with another worker count or reader priority
        for r in rows if isinstance(rows, list) else []:
            for key, v in r.items():
                if key.startswith(("multi_workers", "multi_niceness")) and isinstance(v, dict):
                    base, per = r.get("multi") or {}, [x for x in v.get("per_source_fps") or [] if is_num(x)]
                    label = (f"{key[len('multi_workers'):]} inference workers" if key.startswith("multi_workers")
                             else f"readers at niceness {key[len('multi_niceness'):]}")
                    variants.append([f"{fmt(r.get('sources'), 'd')} x {fmt(r.get('camera_fps'), 'd')} fps", label,
                                     fmt(sum(per) / len(per), ".2f") if per else "-",
                                     fmt(_max(v.get("latency_p95_ms")), ".0f"), fmt(base.get("fps"), ".2f"),
                                     fmt(v.get("fps"), ".2f"), ratio(v.get("fps"), base.get("fps"))])
        if variants:
            lines += table(["cameras", "variant", "per-camera FPS", "p95 ms (worst)", "row's FPS in all",
                            "variant's FPS in all", "variant / row"], variants)
    rc = d.get("reconnect")
    if isinstance(rc, dict):
        tries = [t for t in rc.get("tries") or [] if isinstance(t, dict)]
        times = ", ".join(fmt(t.get("read_again_after_return_s"), ".1f") for t in tries)
        other = _span([t.get("other_camera_frames_during_gap") for t in tries], "d")
        lines += [f"Reconnect: a camera server killed and restarted {fmt(rc.get('down_s'), 'g')} s later was "
                  f"segmented again within 5 s of its return in {fmt(rc.get('within_5_s'), 'd')} of "
                  f"{fmt(rc.get('of'), 'd')} tries (s after its return: {times or '-'}); the other camera's frames "
                  f"segmented during the gap: {other}.", ""]
    return lines


def _batches(formed: Any) -> str:
    """Triton's formed batches as "size x count" ("-" where none were recorded)."""
    if not isinstance(formed, dict) or not formed:
        return "-"
    return ", ".join(f"{b}x{n}" for b, n in sorted(formed.items(), key=lambda kv: int(kv[0])))


def render_triton(d: dict) -> list[str]:
    m = d.get("model") or {}
    best = d.get("in_process_best") or {}
    lines = [f"Artifact `{d.get('artifact', '-')}` ({m.get('format', '-')} {m.get('precision', '-')}, head "
             f"{m.get('head', '-')}, network {hw(m.get('size_hw'))}); {d.get('frames', '-')}; "
             f"{fmt(d.get('seconds_per_run'), 'g')} s per run. Triton: {fmt(d.get('instances'), 'd')} instance(s), "
             f"dynamic batches up to {fmt(d.get('max_batch'), 'd')} (queue delay "
             f"{fmt(d.get('max_queue_delay_us'), 'd')} us). Served masks equal to the in-process ones: "
             f"{d.get('masks_equal_in_process', '-')} frames. Wall time {fmt(d.get('wall_s'), '.0f')} s.", ""]
    if m.get("made_by"):
        target = dig(m, "target_cpu")
        target = target.get("cpu") if isinstance(target, dict) else target
        lines += [f"The artifact: `{m['made_by']}`" + (f" (INT8 target CPU {target})." if target else "."), ""]
    body = [[name, fmt(r.get("fps"), ".1f"), fmt(r.get("p50_ms"), ".1f"), fmt(r.get("p95_ms"), ".1f")]
            for name, r in (d.get("in_process") or {}).items() if isinstance(r, dict)]
    lines += ["In process (`Segmenter`, same artifact and frames):", ""]
    lines += table(["mode", "frames/s", "p50 ms", "p95 ms"], body)
    body = [[str(r.get("protocol", "-")), fmt(r.get("clients"), "d"), fmt(r.get("fps"), ".1f"),
             ratio(r.get("fps"), best.get("fps")), fmt(r.get("p50_ms"), ".1f"), fmt(r.get("p95_ms"), ".1f"),
             _batches(r.get("batches_formed")), fmt(r.get("mean_batch"), ".2f")]
            for r in d.get("served") or [] if isinstance(r, dict)]
    lines += ["Served (one frame per request, each client its own connection; batches from Triton's statistics):",
              ""]
    lines += table(["protocol", "clients", "frames/s", "x in-process best", "p50 ms", "p95 ms",
                    "batches formed (size x count)", "mean batch"], body)
    s = d.get("soak")
    if isinstance(s, dict):
        rss = s.get("rss_mib") or {}
        good = (s.get("requests") or 0) - (s.get("malformed") or 0) if is_num(s.get("requests")) else None
        planned = s.get("requests_planned")
        cut = (f" (of {fmt(planned, 'd')} planned: stopped at its {fmt(s.get('seconds_limit'), 'g')} s limit)"
               if is_num(planned) and is_num(s.get("requests")) and s["requests"] < planned else "")
        lines += [f"Soak: {fmt(s.get('requests'), 'd')} requests{cut} from {fmt(s.get('clients'), 'd')} gRPC clients, "
                  f"{fmt(s.get('malformed'), 'd')} malformed (2-D, float32, 16x16, zero-size): malformed refused "
                  f"with an error {fmt(s.get('bad_refused'), 'd')}/{fmt(s.get('malformed'), 'd')}; good answered "
                  f"with the in-process mask {fmt(s.get('good_ok'), 'd')}/{fmt(good, 'd')} (wrong "
                  f"{fmt(s.get('good_wrong'), 'd')}, failed {fmt(s.get('good_failed'), 'd')}); server restarts "
                  f"{fmt(s.get('server_restarts'), 'd')}; RSS of tritonserver + its stubs "
                  f"{fmt(rss.get('after_warmup_mib'), '.0f')} MiB after warm-up, {fmt(rss.get('end_mib'), '.0f')} "
                  f"MiB at the end ({fmt(s.get('rss_growth_pct'), '+.1f')}%); {fmt(s.get('wall_s'), '.0f')} s.", ""]
        for kind, message in (s.get("error_messages") or {}).items():
            lines.append(f"- {kind}: `{message}`")
        if s.get("error_messages"):
            lines.append("")
    if d.get("server_exit_code") is not None:
        lines += [f"tritonserver stopped with SIGINT: exit code {fmt(d.get('server_exit_code'), 'd')}.", ""]
    return lines

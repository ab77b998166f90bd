"""The report's self-contained HTML page: plots as inline SVG (``figures``), example frames as base64 PNG, no
external scripts, styles, fonts or links, so it opens offline and can be mailed as one file. Variants and the
recommendation are read through ``readers``.
"""
from __future__ import annotations

import base64
import html
import json
from typing import Any

import numpy as np

from calibration.report.figures import menu_svg, pareto_svg, per_class_svg
from calibration.report.plan import Variant
from calibration.report.readers import busy, labelled, number, recommendation, rows, timed_how, variants
from sdk.core.result import colorize


def _png(rgb: np.ndarray, max_width: int = 420) -> str:
    import cv2

    h, w = rgb.shape[:2]
    if w > max_width:
        rgb = cv2.resize(rgb, (max_width, round(h * max_width / w)), interpolation=cv2.INTER_NEAREST)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode()


def example_panels(example: dict, palette: np.ndarray) -> list[str]:
    """data: URIs of the frame, the FP32 mask, the INT8 mask, and where they disagree (red over a dimmed frame)."""
    image, a, b = example["image"], example["fp32"], example["int8"]
    diff = (image.astype(np.float32) * 0.35 + 255 * 0.2).astype(np.uint8)
    diff[a != b] = (230, 20, 60)
    return [_png(image), _png(colorize(a, palette)), _png(colorize(b, palette)), _png(diff)]


# ------------------------------------------------------------------------------------------------------- the page
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1500px;color:#222;
padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 7px;
text-align:right;white-space:nowrap}th{background:#f3f3f3}td.l,th.l{text-align:left}
tr.rec td{background:#fff3c4;font-weight:600}tr.failed td{color:#a00}
.box{border:2px solid #d62728;border-radius:6px;padding:10px 14px;background:#fffaf7;margin:12px 0}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;white-space:pre-wrap;font-size:12px}
.muted{color:#666;font-size:12.5px}.sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;
vertical-align:middle;border:1px solid #999}.frames img{image-rendering:pixelated;max-width:100%}
.warn{color:#a00;font-weight:600}table.wrap td{white-space:normal;max-width:900px;word-break:break-word}
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _html_table(header: list[str], body: list[list[str]], row_classes: list[str] | None = None,
                left: int = 1, wrap: bool = False) -> str:
    th = "".join(f"<th class='l'>{_e(h)}</th>" if i < left else f"<th>{_e(h)}</th>" for i, h in enumerate(header))
    trs = []
    for j, r in enumerate(body):
        cls = f" class='{row_classes[j]}'" if row_classes and row_classes[j] else ""
        tds = "".join(f"<td class='l'>{_e(c)}</td>" if i < left or i == len(r) - 1 else f"<td>{_e(c)}</td>"
                      for i, c in enumerate(r))
        trs.append(f"<tr{cls}>{tds}</tr>")
    return f"<table{' class=wrap' if wrap else ''}><tr>{th}</tr>{''.join(trs)}</table>"


def render_html(report: dict, examples: list[dict], palette: np.ndarray) -> str:
    all_variants, rec = variants(report), recommendation(report)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>segedge report: "
             f"{_e(report['model']['variant'])}</title><style>{_CSS}</style></head><body>"]
    parts += _header(report)
    parts += _recommendation(rec)
    parts += _latency(report, all_variants, rec)
    svg = per_class_svg(report)
    if svg:
        parts.append(f"<h2>Per-class IoU: FP32 vs {_e(report['pictures_int8_variant'])}</h2>{svg}")
    parts += _examples(report, examples, palette)
    parts += _appendix(report, all_variants)
    parts.append("</body></html>")
    return "\n".join(parts)


def _header(report: dict) -> list[str]:
    ev, env = report["evaluation"], report["environment"]
    parts = [f"<h1>Accuracy vs latency: {_e(report['model']['variant'])} from {_e(report['source']['path'])}</h1>"]
    ref = ev["reference_metrics"]
    evtext = (f"{_e(ev['kind'])} {_e(ev.get('split') or '')} at {_e(ev['path'])}: {ev['images']} images (of "
              f"{ev.get('of', ev['images'])}); FP32 reference mIoU {100 * ref['miou']:.2f}, pixel accuracy "
              f"{100 * ref['pixel_accuracy']:.2f}" if labelled(report) else
              f"<span class='warn'>unlabelled</span> set {_e(ev['path'])} ({ev['images']} images): accuracy is "
              "<b>agreement with the FP32 reference only</b> (no labels, no mIoU)")
    parts.append(f"<p class='muted'>{_e(report['created'])} &middot; calibration: "
                 f"{_e(report['calibration']['description'])} (fingerprint {_e(report['calibration']['fingerprint'])})"
                 f"<br>evaluation: {evtext}<br>reference: {_e(ev['reference'])}<br>machine: "
                 f"{_e(env['cpu_model'])}, {env['usable_cpus']} usable CPUs, key flags "
                 f"{_e(' '.join(env['cpu_key_flags']) or 'none')}, load average {_e(env['load_average_1_5_15'])}"
                 "</p>")
    if report.get("tuning"):
        t = report["tuning"]
        warn = (" <span class='warn'>(the same images as the evaluation: the max-drop variants' drops are "
                "optimistic)</span>" if t["same_as_evaluation"] else "")
        parts.append(f"<p class='muted'>max-drop variants tuned on {_e(t['path'])} ({t['images']} images){warn}</p>")
    return parts


def _recommendation(rec) -> list[str]:
    parts = ["<h2>Recommendation</h2><div class='box'>"]
    if rec.variant:
        speed = f" ({rec.speedup_vs_fp32:.2f}x the FP32 p50)" if rec.speedup_vs_fp32 else ""
        metric = "mIoU drop" if rec.metric == "drop_points" else "pixels disagreeing with FP32"
        parts.append(f"<p><b>{_e(rec.variant)}</b>: the fastest variant with {_e(rec.criterion)}. p50 "
                     f"{rec.latency_p50_ms:.1f} ms{speed}; {metric} {rec.value_points:+.2f} points.</p>"
                     f"<p>Reproduce the artifact:</p><pre>{_e(rec.command)}</pre><p>Run it:</p>"
                     f"<pre>{_e(rec.run_with)}</pre>")
        if rec.within_5_percent:
            parts.append(f"<p class='muted'>Within 5% of its p50, i.e. within this machine's noise: "
                         f"{_e(', '.join(rec.within_5_percent))}.</p>")
        extra = [f"{p['variant']} ({p['latency_p50_ms']:.1f} ms, {number(p.get(rec.metric), '+.2f')} points)"
                 for p in rec.passed_over]
        if extra:
            parts.append(f"<p class='muted'>Faster but over the limit: {_e('; '.join(extra))}.</p>")
        nt = [f"{p['variant']} ({number(p.get(rec.metric), '+.2f')} points)" for p in rec.not_timed]
        if nt:
            parts.append(f"<p class='muted'>Not timed on this machine (so not eligible): {_e('; '.join(nt))}: "
                         f"{_e(rec.not_timed[0]['why'])}.</p>")
    else:
        parts.append(f"<p class='warn'>No recommendation: {_e(rec.reason)} ({_e(rec.criterion)}).</p>")
    parts.append("</div>")
    return parts


def _latency(report: dict, variants: list[Variant], rec) -> list[str]:
    """The Pareto plot, how latency was measured, the load warning and the table of every variant."""
    parts = ["<h2>Latency vs accuracy</h2>", pareto_svg(report), menu_svg(report)]
    not_plotted = [v.name for v in variants if v.cost.latency_ms is None]
    if not_plotted:
        parts.append(f"<p class='muted'>Not plotted (no latency measured here): {_e(', '.join(not_plotted))}.</p>")
    li = report["latency_input"]
    nets = sorted({f"{v.cost.network_hw[0]}x{v.cost.network_hw[1]}" for v in variants if v.cost.network_hw})
    parts.append(f"<p class='muted'>Latency: {_e(li['what'])}, frame {li['frame_hw'][0]}x{li['frame_hw'][1]} "
                 f"(network input {_e(', '.join(nets) or '-')}); "
                 f"{li['options']['repeats']} runs per variant after {li['options']['warmup']} warm-up; timed "
                 f"{_e(timed_how(li))}; load time and peak RSS in a "
                 "fresh process per variant (peak RSS includes Python and the runtime library).</p>")
    load = busy(variants)
    if load:
        cls = "warn" if load["busy_pct"] > 10 else "muted"
        parts.append(f"<p class='{cls}'>In the {load['seconds']:g} s before timing, while this report idled, other "
                     f"processes kept {load['busy_pct']:.0f}% of the CPUs busy ({load['steal_pct']:.0f}% stolen by "
                     f"the hypervisor; load average {_e(load['load_average_1_5_15'])})."
                     + (" Absolute latencies are inflated; compare variants by their ratios, which were measured "
                        "side by side under the same load." if load["busy_pct"] > 10 else "") + "</p>")
    table = rows(report)
    rc = ["rec" if r["variant"] == rec.variant else "failed" if r[""].startswith("FAILED") else "" for r in table]
    parts.append(_html_table(list(table[0]), [list(r.values()) for r in table], rc, left=5))
    if report["evaluation"].get("corruptions"):
        parts.append(_corruption_table(report))
    return parts


def _examples(report: dict, examples: list[dict], palette: np.ndarray) -> list[str]:
    if not examples:
        return []
    names = report["model"]["class_names"]
    legend = "".join(f"<span class='sw' style='background:rgb{tuple(int(c) for c in palette[i])}'></span>"
                     f"{_e(n)}" for i, n in enumerate(names))
    parts = [f"<h2>Examples: FP32 vs {_e(examples[0]['variant'])}</h2><p class='muted'>{legend}</p>"
             "<table class='frames'><tr><th class='l'>frame</th><th>FP32 mask</th><th>INT8 mask</th>"
             "<th>disagreement (red)</th></tr>"]
    for ex in examples:
        cells = "".join(f"<td><img alt='' src='{uri}'></td>" for uri in example_panels(ex, palette))
        parts.append(f"<tr>{cells}</tr><tr><td class='l' colspan='4'>eval image #{ex['index']} "
                     f"({_e(ex['why'])}): masks agree on {100 * ex['agreement']:.2f}% of pixels</td></tr>")
    parts.append("</table>")
    return parts


def _appendix(report: dict, variants: list[Variant]) -> list[str]:
    """Skipped cells, how each variant was built, the environment."""
    env = report["environment"]
    parts = []
    if report["skipped"]:
        parts.append("<h2>Not in the grid</h2>" + _html_table(
            ["variant", "why"], [[s["name"], s["reason"]] for s in report["skipped"]], left=2, wrap=True))
    parts.append("<h2>Variants: how each was built</h2>" + _html_table(
        ["variant", "command", "notes"],
        [[v.name, v.command or "-", "; ".join(v.notes + ([f"runtime: {v.cost.runtime}"] if v.cost.runtime else []))]
         for v in variants], left=3, wrap=True))
    parts.append("<h2>Environment</h2>" + _html_table(
        ["item", "value"],
        [["CPU", env["cpu_model"]], ["CPU flags (all)", " ".join(env["cpu_flags"])],
         ["logical / usable CPUs", f"{env['logical_cpus']} / {env['usable_cpus']}"],
         ["threads", json.dumps(env["threads"])], ["platform", env["platform"]],
         ["load average at start", str(env["load_average_1_5_15"])],
         *[[k, v] for k, v in env["versions"].items()],
         ["phases (s)", ", ".join(f"{k} {v:.0f}" for k, v in report["phases_seconds"].items())]], left=2,
        wrap=True))
    parts.append("<p class='muted'>Generated by segedge report. Corruptions follow Hendrycks &amp; Dietterich "
                 "(ImageNet-C) as used for Cityscapes-C in the SegFormer paper (Xie et al., 2021).</p>")
    return parts


def _corruption_table(report: dict) -> str:
    ev = report["evaluation"]
    key = "miou" if labelled(report) else "agreement"
    cors = ev["corruptions"]
    header = ["variant"] + [f"{c} {'mIoU' if key == 'miou' else 'agree %'}" for c in cors] + ["mean"]
    body = []
    for v in variants(report):
        if v.status != "built":
            continue
        accs = [v.corruptions.get(c) for c in cors]
        vals = [getattr(a, key) if a else None for a in accs]
        drops = [a.drop_points if a else None for a in accs]
        cells = [f"{number(x, '.2f', 100)}" + (f" ({d:+.2f})" if isinstance(d, float) and key == "miou" else "")
                 for x, d in zip(vals, drops)]
        finite = [x for x in vals if isinstance(x, float)]
        body.append([v.name, *cells, number(float(np.mean(finite)) if finite else None, ".2f", 100)])
    return (f"<h3>Under corruptions (severity {ev['corruption_severity']}, {ev['corruption_images']} images; in "
            "brackets the drop vs FP32 under the same corruption)</h3>" + _html_table(header, body, left=1))

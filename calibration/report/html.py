"""The report's self-contained HTML page: plots as inline SVG (matplotlib, no pyplot state), example frames as
base64 PNG, no external scripts, styles, fonts or links, so it opens offline and can be mailed as one file.
Variants and the recommendation are read as typed records (``calibration.report.render``'s readers).
matplotlib is needed here only (``pip install 'segedge[report]'``).
"""
from __future__ import annotations

import base64
import html
import io
import json
import re
from typing import Any

import numpy as np

from calibration.report.plan import Variant
from calibration.report.render import _busy, _f, _labelled, _rec, _variants, rows
from sdk.core.errors import require
from sdk.core.result import colorize

BACKEND_COLOURS = {"onnxruntime": "#1f77b4", "openvino": "#7b3fa0", "tensorrt": "#2ca02c"}
PRECISION_MARKERS = {"fp32": "o", "bf16": "s", "fp16": "D", "int8": "^"}


# ---------------------------------------------------------------------------------------------------------- plots
def _svg(fig) -> str:
    from matplotlib import rc_context

    buf = io.StringIO()
    with rc_context({"svg.fonttype": "none"}):  # text stays text: a tenth of the size, and selectable
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None,
                                                                      "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE (it names a URL)
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def _figure(size):
    require("matplotlib", "report")
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def pareto_svg(report: dict) -> str:
    """Latency p50 (x, with the p50..p90 span) vs mIoU (or agreement) per variant; the Pareto frontier drawn; the
    max-drop line; the recommended variant ringed."""
    labelled = _labelled(report)
    key = "miou" if labelled else "agreement"
    fig, ax = _figure((8.5, 5.2))
    pts = {v.name: v for v in _variants(report) if v.timed and v.accuracy and getattr(v.accuracy, key) is not None}

    def point(v: Variant) -> tuple[float, float]:
        return v.cost.p50_ms, 100 * getattr(v.accuracy, key)  # type: ignore[return-value]

    placed: list[tuple[float, float]] = []
    for name, v in pts.items():
        lat, q = v.cost.latency_ms, point(v)[1]
        ax.errorbar(lat["p50_ms"], q, xerr=[[0], [lat["p90_ms"] - lat["p50_ms"]]], fmt=PRECISION_MARKERS.get(
            v.precision, "o"), color=BACKEND_COLOURS.get(v.backend, "grey"), ms=8, capsize=2, lw=0.8)
        # points with (nearly) the same numbers get their labels stacked instead of printed over each other
        near = sum(1 for x, y in placed if abs(x - lat["p50_ms"]) < 0.08 * lat["p50_ms"] and abs(y - q) < 0.05)
        placed.append((lat["p50_ms"], q))
        ax.annotate(name, (lat["p50_ms"], q), textcoords="offset points", xytext=(6, 4 - 10 * near), fontsize=7.5)
    front = [n for n in report["pareto_front"] if n in pts]
    if front:
        xs, ys = zip(*(point(pts[n]) for n in front))
        ax.step(xs, ys, where="post", color="#d62728", lw=1.2, alpha=0.7, label="Pareto frontier")
    recommendation = _rec(report)
    rec = recommendation.variant
    if rec in pts:
        ax.plot(*point(pts[rec]), "o", ms=18, mfc="none", mec="#d62728", mew=2, label=f"recommended: {rec}")
    limit = recommendation.max_drop_points
    ref = report["evaluation"]["reference_metrics"]
    ax.axhline(100 * ref[key] - limit, color="grey", ls="--", lw=0.8,
               label=f"FP32 {'mIoU' if labelled else 'agreement'} - {limit:g} points")
    for b, col in BACKEND_COLOURS.items():
        if any(v.backend == b for v in pts.values()):
            ax.plot([], [], "s", color=col, label=b)
    for p, m in PRECISION_MARKERS.items():
        if any(v.precision == p for v in pts.values()):
            ax.plot([], [], m, color="black", mfc="none", label=p)
    ax.set_xlabel("latency p50 (ms, bar to p90), lower is better")
    ax.set_ylabel("mIoU (%)" if labelled else "pixel agreement with FP32 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="best")
    return _svg(fig)


def per_class_svg(report: dict) -> str | None:
    """Per-class IoU bars: the FP32 reference vs the chosen INT8 variant (labelled sets only)."""
    chosen = report.get("pictures_int8_variant")
    if not _labelled(report) or not chosen:
        return None
    v = next(x for x in _variants(report) if x.name == chosen)
    ref = report["evaluation"]["reference_metrics"]["iou_per_class"]
    names = list(ref)
    mine = (v.accuracy.iou_per_class if v.accuracy else None) or {}
    a = [100 * (ref[n] if ref[n] is not None else np.nan) for n in names]
    b = [100 * (mine[n] if mine.get(n) is not None else np.nan) for n in names]
    fig, ax = _figure((max(6.0, 0.6 * len(names) + 2), 4.2))
    x = np.arange(len(names))
    ax.bar(x - 0.2, a, 0.4, label="FP32 (reference)", color="#1f77b4")
    ax.bar(x + 0.2, b, 0.4, label=chosen, color="#ff7f0e")
    for i, (p, q) in enumerate(zip(a, b)):
        if np.isfinite(p) and np.isfinite(q) and abs(p - q) >= 0.5:
            ax.annotate(f"{q - p:+.1f}", (i + 0.2, max(p, q)), ha="center", va="bottom", fontsize=7)
        if not np.isfinite(p):
            ax.annotate("n/a", (i, 1), ha="center", fontsize=7)
    ax.set_xticks(x, names, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _svg(fig)


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
    variants, rec = _variants(report), _rec(report)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>segedge report: "
             f"{_e(report['model']['variant'])}</title><style>{_CSS}</style></head><body>"]
    parts += _header(report)
    parts += _recommendation(rec)
    parts += _latency(report, variants, rec)
    svg = per_class_svg(report)
    if svg:
        parts.append(f"<h2>Per-class IoU: FP32 vs {_e(report['pictures_int8_variant'])}</h2>{svg}")
    parts += _examples(report, examples, palette)
    parts += _appendix(report, variants)
    parts.append("</body></html>")
    return "\n".join(parts)


def _header(report: dict) -> list[str]:
    ev, env = report["evaluation"], report["environment"]
    parts = [f"<h1>Accuracy vs latency: {_e(report['model']['variant'])} from {_e(report['source']['path'])}</h1>"]
    ref = ev["reference_metrics"]
    evtext = (f"{_e(ev['kind'])} {_e(ev.get('split') or '')} at {_e(ev['path'])}: {ev['images']} images (of "
              f"{ev.get('of', ev['images'])}); FP32 reference mIoU {100 * ref['miou']:.2f}, pixel accuracy "
              f"{100 * ref['pixel_accuracy']:.2f}" if _labelled(report) else
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
        extra = [f"{p['variant']} ({p['latency_p50_ms']:.1f} ms, {_f(p.get(rec.metric), '+.2f')} points)"
                 for p in rec.passed_over]
        if extra:
            parts.append(f"<p class='muted'>Faster but over the limit: {_e('; '.join(extra))}.</p>")
        nt = [f"{p['variant']} ({_f(p.get(rec.metric), '+.2f')} points)" for p in rec.not_timed]
        if nt:
            parts.append(f"<p class='muted'>Not timed on this machine (so not eligible): {_e('; '.join(nt))}: "
                         f"{_e(rec.not_timed[0]['why'])}.</p>")
    else:
        parts.append(f"<p class='warn'>No recommendation: {_e(rec.reason)} ({_e(rec.criterion)}).</p>")
    parts.append("</div>")
    return parts


def _latency(report: dict, variants: list[Variant], rec) -> list[str]:
    """The Pareto plot, how latency was measured, the load warning and the table of every variant."""
    from calibration.report.figures import menu_svg

    parts = ["<h2>Latency vs accuracy</h2>", pareto_svg(report), menu_svg(report)]
    not_plotted = [v.name for v in variants if v.cost.latency_ms is None]
    if not_plotted:
        parts.append(f"<p class='muted'>Not plotted (no latency measured here): {_e(', '.join(not_plotted))}.</p>")
    li = report["latency_input"]
    nets = sorted({f"{v.cost.network_hw[0]}x{v.cost.network_hw[1]}" for v in variants if v.cost.network_hw})
    parts.append(f"<p class='muted'>Latency: {_e(li['what'])}, frame {li['frame_hw'][0]}x{li['frame_hw'][1]} "
                 f"(network input {_e(', '.join(nets) or '-')}); "
                 f"{li['options']['repeats']} runs per variant after {li['options']['warmup']} warm-up, variants "
                 f"alternating run by run with a {li['options']['pause_s']} s pause; load time and peak RSS in a "
                 "fresh process per variant (peak RSS includes Python and the runtime library).</p>")
    busy = _busy(variants)
    if busy:
        cls = "warn" if busy["busy_pct"] > 10 else "muted"
        parts.append(f"<p class='{cls}'>In the {busy['seconds']:g} s before timing, while this report idled, other "
                     f"processes kept {busy['busy_pct']:.0f}% of the CPUs busy ({busy['steal_pct']:.0f}% stolen by "
                     f"the hypervisor; load average {_e(busy['load_average_1_5_15'])})."
                     + (" Absolute latencies are inflated; compare variants by their ratios, which were measured "
                        "side by side under the same load." if busy["busy_pct"] > 10 else "") + "</p>")
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
    key = "miou" if _labelled(report) else "agreement"
    cors = ev["corruptions"]
    header = ["variant"] + [f"{c} {'mIoU' if key == 'miou' else 'agree %'}" for c in cors] + ["mean"]
    body = []
    for v in _variants(report):
        if v.status != "built":
            continue
        accs = [v.corruptions.get(c) for c in cors]
        vals = [getattr(a, key) if a else None for a in accs]
        drops = [a.drop_points if a else None for a in accs]
        cells = [f"{_f(x, '.2f', 100)}" + (f" ({d:+.2f})" if isinstance(d, float) and key == "miou" else "")
                 for x, d in zip(vals, drops)]
        finite = [x for x in vals if isinstance(x, float)]
        body.append([v.name, *cells, _f(float(np.mean(finite)) if finite else None, ".2f", 100)])
    return (f"<h3>Under corruptions (severity {ev['corruption_severity']}, {ev['corruption_images']} images; in "
            "brackets the drop vs FP32 under the same corruption)</h3>" + _html_table(header, body, left=1))

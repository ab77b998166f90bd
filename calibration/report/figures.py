"""The report's plots, each as inline SVG (matplotlib's object API, no pyplot state): latency p50 vs mIoU (or
agreement) of every timed variant with the Pareto front (``pareto_svg``), per-class IoU of FP32 vs the chosen INT8
variant (``per_class_svg``), and the speed menu's two panels (``menu_svg``: coloured by input scale, marker token
merge; coloured by precision, marker backend), drawn only when the grid has more than one menu point. Each menu point
is an SVG group with id ``menu-<panel>-<variant>`` (panel: scale or precision), so a page can be checked for what it
plots. matplotlib is needed here only (``pip install 'segedge[report]'``).
"""
from __future__ import annotations

import io
import re

import numpy as np

from calibration.report.plan import Variant
from calibration.report.readers import labelled, recommendation, variants
from sdk.core.errors import require

BACKEND_COLOURS = {"onnxruntime": "#1f77b4", "openvino": "#7b3fa0", "tensorrt": "#2ca02c"}
PRECISION_MARKERS = {"fp32": "o", "bf16": "s", "fp16": "D", "int8": "^"}


def svg(fig) -> str:
    """The figure as inline SVG text: text kept as text, no metadata, no DOCTYPE (it names a URL)."""
    from matplotlib import rc_context

    buf = io.StringIO()
    with rc_context({"svg.fonttype": "none"}):  # text stays text: a tenth of the size, and selectable
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None,
                                                                      "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE (it names a URL)
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def figure(size):
    """A matplotlib Figure (no pyplot state) and its one axes; matplotlib is the report's extra."""
    require("matplotlib")
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def pareto_svg(report: dict) -> str:
    """Latency p50 (x, with the p50..p90 span) vs mIoU (or agreement) per variant; the Pareto frontier drawn; the
    max-drop line; the recommended variant ringed."""
    is_labelled = labelled(report)
    key = "miou" if is_labelled else "agreement"
    fig, ax = figure((8.5, 5.2))
    pts = {v.name: v for v in variants(report) if v.timed and v.accuracy and getattr(v.accuracy, key) is not None}

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
    rec_record = recommendation(report)
    rec = rec_record.variant
    if rec in pts:
        ax.plot(*point(pts[rec]), "o", ms=18, mfc="none", mec="#d62728", mew=2, label=f"recommended: {rec}")
    limit = rec_record.max_drop_points
    ref = report["evaluation"]["reference_metrics"]
    ax.axhline(100 * ref[key] - limit, color="grey", ls="--", lw=0.8,
               label=f"FP32 {'mIoU' if is_labelled else 'agreement'} - {limit:g} points")
    for b, col in BACKEND_COLOURS.items():
        if any(v.backend == b for v in pts.values()):
            ax.plot([], [], "s", color=col, label=b)
    for p, m in PRECISION_MARKERS.items():
        if any(v.precision == p for v in pts.values()):
            ax.plot([], [], m, color="black", mfc="none", label=p)
    ax.set_xlabel("latency p50 (ms, bar to p90), lower is better")
    ax.set_ylabel("mIoU (%)" if is_labelled else "pixel agreement with FP32 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="best")
    return svg(fig)


def per_class_svg(report: dict) -> str | None:
    """Per-class IoU bars: the FP32 reference vs the chosen INT8 variant (labelled sets only)."""
    chosen = report.get("pictures_int8_variant")
    if not labelled(report) or not chosen:
        return None
    v = next(x for x in variants(report) if x.name == chosen)
    ref = report["evaluation"]["reference_metrics"]["iou_per_class"]
    names = list(ref)
    mine = (v.accuracy.iou_per_class if v.accuracy else None) or {}
    a = [100 * (ref[n] if ref[n] is not None else np.nan) for n in names]
    b = [100 * (mine[n] if mine.get(n) is not None else np.nan) for n in names]
    fig, ax = figure((max(6.0, 0.6 * len(names) + 2), 4.2))
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
    return svg(fig)


SCALE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
PRECISION_COLOURS = {"fp32": "#1f77b4", "bf16": "#9467bd", "fp16": "#2ca02c", "int8": "#d62728"}
BACKEND_MARKERS = {"onnxruntime": "o", "openvino": "s", "tensorrt": "D"}


def menu_svg(report: dict) -> str:
    """Two side-by-side panels (inline SVG), or "" when the report has one scale and no token merging."""
    grid = report.get("grid", {})
    if len(grid.get("scales", [1.0])) < 2 and grid.get("token_merges", ["none"]) == ["none"]:
        return ""
    key = "miou" if labelled(report) else "agreement"
    pts = [v for v in variants(report) if v.timed and v.accuracy and getattr(v.accuracy, key) is not None]
    if not pts:
        return ""
    scales = sorted({v.scale for v in pts}, reverse=True)
    scale_colour = {s: SCALE_COLOURS[i % len(SCALE_COLOURS)] for i, s in enumerate(scales)}
    front = [v for n in report["pareto_front"] for v in pts if v.name == n]
    rec = recommendation(report).variant
    fig, _ = figure((13, 5.2))
    fig.clear()
    axes = fig.subplots(1, 2, sharey=True)
    panels = (("scale", "input scale (marker: token merge)", lambda v: scale_colour[v.scale],
               lambda v: "o" if v.token_merge == "none" else "^"),
              ("precision", "precision (marker: backend)", lambda v: PRECISION_COLOURS.get(v.precision, "grey"),
               lambda v: BACKEND_MARKERS.get(v.backend, "o")))
    for ax, (panel, title, colour, marker) in zip(axes, panels):
        for v in pts:
            ax.plot(v.cost.p50_ms, 100 * getattr(v.accuracy, key), marker(v), color=colour(v), ms=8, alpha=0.85,
                    gid=f"menu-{panel}-{v.name}")
        if front:
            ax.step([v.cost.p50_ms for v in front], [100 * getattr(v.accuracy, key) for v in front], where="post",
                    color="black", lw=1, alpha=0.6, label="Pareto front")
        for v in pts:
            if v.name == rec:
                ax.plot(v.cost.p50_ms, 100 * getattr(v.accuracy, key), "o", ms=18, mfc="none", mec="black", mew=2,
                        label=f"recommended: {rec}")
        ax.set_title(f"coloured by {title}", fontsize=9)
        ax.set_xlabel("latency p50 (ms), lower is better")
        ax.grid(alpha=0.3)
    for s in scales:
        axes[0].plot([], [], "s", color=scale_colour[s], label=f"scale {s:g}")
    for m, mk in (("no merge", "o"), ("token merge", "^")):
        axes[0].plot([], [], mk, color="black", mfc="none", label=m)
    for p in sorted({v.precision for v in pts}):
        axes[1].plot([], [], "s", color=PRECISION_COLOURS.get(p, "grey"), label=p)
    for b in sorted({v.backend for v in pts}):
        axes[1].plot([], [], BACKEND_MARKERS.get(b, "o"), color="black", mfc="none", label=b)
    axes[0].set_ylabel("mIoU (%)" if key == "miou" else "pixel agreement with FP32 (%)")
    for ax in axes:
        ax.legend(fontsize=7.5, loc="best")
    return svg(fig)

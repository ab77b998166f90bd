"""The speed menu's Pareto plots for the report's HTML: latency p50 vs mIoU (or agreement) of every timed variant,
once coloured by input scale (marker: token merge) and once by precision (marker: backend), each with the Pareto
front and the recommended variant ringed. Drawn only when the grid has more than one menu point. Each point is an SVG
group with id ``menu-<panel>-<variant>`` (panel: scale or precision), so a page can be checked for what it plots."""
from __future__ import annotations

from calibration.report.html import _figure, _svg
from calibration.report.render import _labelled, _rec, _variants

SCALE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
PRECISION_COLOURS = {"fp32": "#1f77b4", "bf16": "#9467bd", "fp16": "#2ca02c", "int8": "#d62728"}
BACKEND_MARKERS = {"onnxruntime": "o", "openvino": "s", "tensorrt": "D"}


def menu_svg(report: dict) -> str:
    """Two side-by-side panels (inline SVG), or "" when the report has one scale and no token merging."""
    grid = report.get("grid", {})
    if len(grid.get("scales", [1.0])) < 2 and grid.get("token_merges", ["none"]) == ["none"]:
        return ""
    key = "miou" if _labelled(report) else "agreement"
    pts = [v for v in _variants(report) if v.timed and v.accuracy and getattr(v.accuracy, key) is not None]
    if not pts:
        return ""
    scales = sorted({v.scale for v in pts}, reverse=True)
    scale_colour = {s: SCALE_COLOURS[i % len(SCALE_COLOURS)] for i, s in enumerate(scales)}
    front = [v for n in report["pareto_front"] for v in pts if v.name == n]
    rec = _rec(report).variant
    fig, _ = _figure((13, 5.2))
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
    return _svg(fig)

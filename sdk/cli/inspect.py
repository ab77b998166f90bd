"""``segedge inspect``: describe an artifact or a checkpoint, for people (``--json``: everything, as recorded)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


_CALIB_CHECK = "int8_vs_fp32_"  # NNCF's sanity figure on calibration frames (calibration/quantize_openvino.py)


def _pct(value) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, (int, float)) else "n/a"


def _num(key: str, value):
    """A recorded number as people read it: agreements in percent, differences in 2-digit scientific, seconds and
    other floats to 3 significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if "agreement" in key:
        return _pct(value)
    if "diff" in key or "abs" in key or "atol" in key:
        return f"{value:.1e}"
    return value if isinstance(value, int) else float(f"{value:.3g}")


def _hw(size_hw) -> str:
    return "the image's own" if not size_hw else f"{size_hw[0]}x{size_hw[1]}"


def _size_mib(path: Path) -> str:
    files = [p for p in path.iterdir() if p.is_file() and p.name != "model.json"]
    return f"{sum(p.stat().st_size for p in files) / 2**20:.1f} MiB"


def artifact_summary(path: Path) -> list[str]:
    """The people-facing description of an artifact folder."""
    from sdk.core.manifest import read_manifest

    m = read_manifest(path)
    pp = m.preprocess.to_dict()
    shape = next((t.shape for t in m.inputs if t.name == "pixel_values"), None)
    static = shape is not None and all(isinstance(v, int) for v in shape[2:])
    lines = [f"artifact   {path}  ({m.format}: {m.model_file}, {_size_mib(path)})",
             f"model      SegFormer-{str(m.architecture.get('variant', '?')).upper()}, {len(m.class_names)} classes: "
             f"{', '.join(m.class_names[:12])}{' ...' if len(m.class_names) > 12 else ''}",
             f"graph      {m.graph}; head {m.head} (upsample {m.upsample}); opset {m.opset}",
             f"precision  {m.precision}",
             f"input      {'static ' + 'x'.join(map(str, shape[2:])) if static else 'any size'} "
             f"(network size {_hw(pp.get('size_hw'))}, resize {pp.get('resize_mode', pp.get('resize', '?'))}"
             f"{', aspect ' + str(pp['aspect']) if pp.get('aspect') else ''}; mean "
             f"{[round(v, 3) for v in pp.get('mean', [])]}, std {[round(v, 3) for v in pp.get('std', [])]}, "
             f"{pp.get('channel_order', 'rgb')})"]
    src = m.source or {}
    if src:
        sha = str(src.get("sha256", ""))[:12]
        lines.append(f"source     {src.get('path', src.get('checkpoint', '?'))} ({src.get('layout', '?')}"
                     f"{', sha256 ' + sha + '...' if sha else ''})")
    if m.parity:
        lines.append("parity     " + ", ".join(f"{k} {_num(k, v)}" for k, v in m.parity.items()
                                               if isinstance(v, (int, float)) and not isinstance(v, bool)
                                               and not k.startswith(_CALIB_CHECK)))
    extra = m.extra or {}
    q = extra.get("quantization")
    if q:
        parts = [q.get("tool", "?")]
        for key in ("target", "method", "ranges", "activations", "weights", "quantized_nodes", "recipe"):
            if q.get(key) not in (None, "", [], {}):
                parts.append(f"{key} {q[key] if not isinstance(q[key], dict) else json.dumps(q[key])}")
        if q.get("kept_float_by_user"):
            parts.append(f"kept float {', '.join(q['kept_float_by_user'])}")
        lines.append("quantized  " + "; ".join(str(p) for p in parts))
    cal = extra.get("calibration") or (q or {}).get("calibration")
    if cal:
        lines.append(f"calibrated {cal.get('description', '?')} ({cal.get('frames', '?')} frames, fingerprint "
                     f"{cal.get('fingerprint', '?')})")
    cpu = extra.get("target_cpu")
    if cpu:
        lines.append(f"target CPU {cpu.get('cpu')} ({cpu.get('recipe')}); calibrated on "
                     f"{cpu.get('calibrated_on', {}).get('class', '?')}")
    acc = extra.get("accuracy")
    if acc:
        lines.append(f"accuracy   held-out agreement with FP32 {_pct(acc.get('agreement'))} on {acc.get('frames')} "
                     f"held-out frames (not calibrated on; {acc.get('runtime')}, "
                     f"{acc.get('machine', {}).get('class', '?')} CPU)")
    if isinstance(m.parity.get(_CALIB_CHECK + "mask_agreement"), (int, float)):
        lines.append(f"sanity     INT8 vs FP32 (OpenVINO f32 hint) {_pct(m.parity[_CALIB_CHECK + 'mask_agreement'])} on "
                     f"{m.parity.get(_CALIB_CHECK + 'frames', '?')} calibration frames (calibrated on: a sanity check, "
                     "not the held-out figure)")
    aa = extra.get("accuracy_aware")
    if aa:
        lines.append(f"max drop   {aa.get('measured_drop_points', float('nan')):.2f} mIoU points measured, "
                     f"{aa.get('max_drop_points')} allowed ({'met' if aa.get('max_drop_met') else 'NOT met'}); float "
                     f"blocks: {', '.join(aa.get('float_blocks') or aa.get('reverted_to_float') or []) or 'none'}")
    for key in ("miou", "eval"):
        if isinstance(extra.get(key), (int, float)):
            lines.append(f"mIoU       {100 * extra[key]:.1f}%")
    lines += _speed_lines(m, path)
    if m.versions:
        lines.append("versions   " + ", ".join(f"{k} {v}" for k, v in m.versions.items()))
    return lines


def _speed_lines(m, path: Path) -> list[str]:
    """The INT8-vs-FP32 timing quantize recorded (``calibration.int8_speed``), and what runtime auto does with the
    artifact here (``runtimes.choose.describe_auto``: the cached measurement, if any; nothing is timed)."""
    from runtimes import RUNTIMES
    from runtimes.choose import describe_auto
    from sdk.core.records import SpeedRecord

    lines = []
    speed = SpeedRecord.read(m)
    if speed is not None:
        from calibration.int8_speed import summary

        verdict = "" if speed.int8_faster else (f"; NOT faster by the {speed.margin:.2f}x INT8 needs: the FP32 on "
                                                f"{speed.fp32_runtime} is the faster choice there")
        lines.append(f"speed      {summary(speed)}, when quantized{verdict}")
    lines.append(f"runtime    auto here: {describe_auto(path, m, RUNTIMES)}")
    return lines


def _artifact_json(path: Path) -> dict:
    from sdk.core.manifest import read_manifest

    from runtimes import RUNTIMES
    from runtimes.choose import describe_auto

    m = read_manifest(path)
    return {"artifact": str(path), "format": m.format, "graph": m.graph, "precision": m.precision, "head": m.head,
            "upsample": m.upsample, "variant": m.architecture.get("variant"), "classes": m.class_names,
            "preprocess": m.preprocess.to_dict(), "inputs": [vars(t) for t in m.inputs],
            "outputs": [vars(t) for t in m.outputs], "opset": m.opset, "source": m.source, "parity": m.parity,
            "versions": m.versions, "extra": m.extra, "auto_runtime": describe_auto(path, m, RUNTIMES)}


def run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.is_file() and (path.parent / "model.json").is_file():
        path = path.parent  # a model file inside an artifact folder (e.g. out/b0.engine/model.engine)
    if (path / "model.json").exists():
        if args.json:
            print(json.dumps(_artifact_json(path), indent=2))
        else:
            print("\n".join(artifact_summary(path)))
        return 0
    from converters.checkpoints import load_checkpoint

    ck = load_checkpoint(path)
    info = {"checkpoint": str(path), "layout": ck.layout, "variant": ck.config.variant,
            "num_classes": ck.config.num_classes, "classes": ck.class_names,
            "parameters": sum(p.numel() for p in ck.model.parameters()),
            "preprocess": ck.preprocess.to_dict(), "sha256": ck.sha256}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        pp = info["preprocess"]
        print(f"checkpoint {path} ({ck.layout} layout, sha256 {ck.sha256[:12]}...)\n"
              f"model      SegFormer-{str(ck.config.variant).upper()}, {info['parameters'] / 1e6:.2f} M parameters, "
              f"{ck.config.num_classes} classes: {', '.join(ck.class_names[:12])}"
              f"{' ...' if len(ck.class_names) > 12 else ''}\n"
              f"input      network size {_hw(pp.get('size_hw'))}, mean {[round(v, 3) for v in pp.get('mean', [])]}, "
              f"std {[round(v, 3) for v in pp.get('std', [])]}\n"
              f"next: segedge export {path} --output out/model   # or segedge export-openvino")
    return 0


def add_parser(sub) -> None:
    """Register ``segedge inspect``. Imports nothing heavy."""
    p = sub.add_parser("inspect", help="describe an artifact (graph, precision, quantization, calibration set, "
                                       "recorded accuracy) or a checkpoint")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="everything recorded, as JSON")
    p.set_defaults(func=run)

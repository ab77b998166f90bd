"""What a user gets from the peers' documented defaults, scored and timed beside our artifacts in one run.

    python -m benchmarks.bench_peers --checkpoint ../shared/models/segformer-b0-camvid-hf \
        --camvid ../shared/data/camvid --json docs/benchmarks/peers.json \
        --ours ort-fp32=out/b0-ort-fp32 --ours ov-float-tm2x2=out/b0-ov-tm2x2

The peers are built here with the toolkits' own calls and none of this project's export or quantization code:
- ``ort-fp32``: transformers' ``SegformerForSemanticSegmentation`` from the Hugging Face folder, wrapped to return
  ``logits``, through a plain ``torch.onnx.export`` (opset 17, PyTorch's default exporter (dynamo in torch >= 2.9),
  static 1x3x360x480: no dynamic axes, as the call is documented), run in ONNX Runtime's CPU provider;
- ``ort-int8``: ONNX Runtime ``quantize_static`` on that ONNX with ``QuantFormat.QDQ``, ``per_channel=True`` and
  everything else default (MinMax calibrator, QInt8 activations and weights, no ``quant_pre_process``), calibrated
  on ``--num-samples`` CamVid train frames (spread evenly over train.txt) preprocessed by the checkpoint's HF image
  processor (MinMax's augmented graph reduces each tensor to its min/max per frame, so 300 frames fit in memory;
  ``CalibMaxIntermediateOutputs`` is left unset: in ONNX Runtime 1.32 reaching it drops the frames collected so far
  instead of merging them);
- ``ov-default``: ``ov.convert_model`` of the plain ONNX, ``core.compile_model(model, "CPU")`` (OpenVINO picks the
  inference precision: bf16 on CPUs with AMX/AVX-512 BF16);
- ``nncf-int8``: ``nncf.quantize(ov_model, nncf.Dataset(frames), model_type=nncf.ModelType.TRANSFORMER)``, other
  options default, on the same calibration frames, compiled for "CPU".

Peers' masks follow transformers' ``post_process_semantic_segmentation``: logits upsampled bilinearly (torch,
align_corners False) to the frame's 360x480, then argmax. Each is scored on CamVid test (every ``--every``-th image):
mIoU against the labels (void ignored; ``calibration.metrics``) and pixel agreement with ``ort-fp32``'s masks.
``--ours NAME=PATH`` artifact folders (any runtime ``Segmenter`` opens) are scored the same way through their own
preprocessing. Latency: model only (the preprocessed first test frame -> logits -> mask at 360x480; ours:
``Runtime.infer`` and the artifact's head, as ``segedge bench`` times it), p50/p90. Each variant is timed alone in a
fresh process of its own (``sdk.timing.isolated``: the peers rebuilt there from the files built here by
``open_peer``, our artifacts opened on the runtime ``Segmenter`` picked), ``--rounds`` alternating rounds, runs
pooled, so no variant's threads share the cores with another's timing (in one process, ONNX Runtime's spinning
threads slowed whatever ran next: issue 28). One such pass per ``--pauses-ms`` value, that much idle before each run
(100: a frame every 0.1 s, the primary pass; 33: a 30 fps camera; 0: back to back, a saturated pipeline). Idle
matters: on this project's 2-core VM an OpenVINO run after 0.1 s idle took ~5 ms longer than back to back (B0 bf16
token-merged: 16.5 vs 12.1 ms), a fixed cost that weighs most on the fastest variants. ``--in-process`` keeps the
older protocol for comparison (all variants in this process alternated run by run; at pause 0 each alone, back to
back). The JSON's ``timing.isolation`` says which. Ratios
are peer p50 / ours p50 within each pass; "best peer" is the fastest peer
within ``--max-drop`` mIoU points of ``ort-fp32``. Prints a table, writes --json (schema segedge.peers_bench/1) with
the command line and the machine's CPU flags/ISA.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCHEMA = "segedge.peers_bench/1"
PEERS = ("ort-fp32", "ort-int8", "ov-default", "nncf-int8")
RECIPES = {
    "ort-fp32": "torch.onnx.export(model -> logits, opset_version=17), static 1x3x360x480; onnxruntime "
                "InferenceSession(CPUExecutionProvider)",
    "ort-int8": "onnxruntime.quantization.quantize_static(quant_format=QDQ, per_channel=True, MinMax) on that ONNX",
    "ov-default": "ov.convert_model(that ONNX); core.compile_model(model, 'CPU')",
    "nncf-int8": "nncf.quantize(ov.convert_model(that ONNX), nncf.Dataset(frames), "
                 "model_type=nncf.ModelType.TRANSFORMER); compile_model(..., 'CPU')",
}


def _ours(spec: str) -> tuple[str, Path, str]:
    """NAME=PATH (the runtime Segmenter picks: runtime auto) or NAME=PATH@RUNTIME (onnxruntime, openvino)."""
    name, sep, rest = spec.partition("=")
    path, _, runtime = rest.rpartition("@") if "@" in rest else (rest, "", "auto")
    if not sep or not name or not path or not runtime:
        raise argparse.ArgumentTypeError(f"--ours: expected NAME=PATH or NAME=PATH@RUNTIME (an artifact folder), "
                                         f"got {spec!r}")
    if name in PEERS:
        raise argparse.ArgumentTypeError(f"--ours: {name!r} is a peer's name; pick another, e.g. ours-{name}")
    return name, Path(path), runtime


def _calibration_paths(camvid: Path, n: int) -> list[Path]:
    from calibration.datasets import CamVid

    pairs = CamVid(camvid, "train").pairs()
    if not 1 <= n <= len(pairs):
        raise SystemExit(f"--num-samples: expected 1..{len(pairs)} (CamVid train), got {n}")
    return [pairs[i][0] for i in np.unique(np.linspace(0, len(pairs) - 1, n).round().astype(int))]


def build_peers(checkpoint: Path, calib_x: list[np.ndarray], work: Path) -> tuple[dict, dict, dict, dict]:
    """The four peers: name -> fn((1, 3, H, W) float32) -> (1, K, h, w) logits; their build seconds, descriptions
    (what runs them) and model files (what ``open_peer`` loads to time them in a process of their own: the ONNX
    files, and NNCF's quantized model saved as an IR, weights kept as they are)."""
    import nncf
    import onnxruntime as ort
    import openvino as ov
    import torch
    import transformers
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    fns, build_s, described, files = {}, {}, {}, {}
    t = time.perf_counter()
    model = transformers.SegformerForSemanticSegmentation.from_pretrained(checkpoint).eval()

    class Logits(torch.nn.Module):  # the forward returns a ModelOutput; ONNX gets the logits
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m(pixel_values=pixel_values).logits

    onnx_path = work / "plain" / "model.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(Logits(model).eval(), (torch.from_numpy(calib_x[0]),), str(onnx_path),
                      input_names=["pixel_values"], output_names=["logits"], opset_version=17)
    export_s = time.perf_counter() - t
    opts = ort.SessionOptions()
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    fns["ort-fp32"] = lambda x, s=sess: s.run(["logits"], {"pixel_values": x})[0]
    build_s["ort-fp32"] = time.perf_counter() - t
    described["ort-fp32"] = f"onnxruntime {ort.__version__} {sess.get_providers()[0]}, default session options"
    files["ort-fp32"] = files["ov-default"] = str(onnx_path)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib_x)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"pixel_values": x}

    t = time.perf_counter()
    q_path = work / "ort-int8" / "model.onnx"
    q_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(str(onnx_path), str(q_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
    qs = ort.InferenceSession(str(q_path), ort.SessionOptions(), providers=["CPUExecutionProvider"])
    fns["ort-int8"] = lambda x, s=qs: s.run(["logits"], {"pixel_values": x})[0]
    build_s["ort-int8"] = export_s + time.perf_counter() - t
    described["ort-int8"] = f"onnxruntime {ort.__version__} {qs.get_providers()[0]}, QDQ per-channel MinMax"
    files["ort-int8"] = str(q_path)

    core = ov.Core()
    for name in ("ov-default", "nncf-int8"):
        t = time.perf_counter()
        ov_model = ov.convert_model(str(onnx_path))
        if name == "nncf-int8":
            ov_model = nncf.quantize(ov_model, nncf.Dataset(calib_x), model_type=nncf.ModelType.TRANSFORMER)
            files[name] = str(work / name / "model.xml")
            ov.save_model(ov_model, files[name], compress_to_fp16=False)
        compiled = core.compile_model(ov_model, "CPU")
        out = compiled.output(0)
        fns[name] = lambda x, c=compiled, o=out: c(x)[o]
        build_s[name] = export_s + time.perf_counter() - t
        precision = compiled.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type: "bf16", "f32"
        precision = precision.to_string() if hasattr(precision, "to_string") else str(precision)
        described[name] = (f"OpenVINO {ov.__version__.split('-')[0]} CPU, inference precision {precision}"
                           + (f", NNCF {nncf.__version__}" if name == "nncf-int8" else ""))
    return fns, build_s, described, files


def peer_mask(fn, x: np.ndarray, frame_hw) -> np.ndarray:
    """transformers' ``post_process_semantic_segmentation`` of a peer's logits: bilinear to the frame, argmax."""
    import torch

    with torch.inference_mode():
        up = torch.nn.functional.interpolate(torch.from_numpy(fn(x)), size=tuple(frame_hw), mode="bilinear",
                                             align_corners=False)
        return up.argmax(1).numpy()


def open_peer(*, name: str, path: str, pixel_values: str, frame_hw: list[int]):
    """``sdk.timing.isolated``'s factory: the peer ``name`` rebuilt from the file ``build_peers`` saved, as its
    in-process function runs it (an ONNX Runtime session with default options; OpenVINO's convert_model of the ONNX
    and compile_model(..., "CPU"); NNCF's IR read and compiled likewise), then ``peer_mask``."""
    from sdk.timing.isolated import TimedCall

    x = np.load(pixel_values)
    if name.startswith("ort-"):
        import onnxruntime as ort

        sess = ort.InferenceSession(path, ort.SessionOptions(), providers=["CPUExecutionProvider"])
        fn, what = (lambda a: sess.run(["logits"], {"pixel_values": a})[0]), f"onnxruntime {ort.__version__}"
    else:
        import openvino as ov

        core = ov.Core()
        model = ov.convert_model(path) if path.endswith(".onnx") else core.read_model(path)
        compiled = core.compile_model(model, "CPU")
        out = compiled.output(0)
        fn, what = (lambda a: compiled(a)[out]), f"OpenVINO {ov.__version__.split('-')[0]} CPU"
    return TimedCall(lambda: peer_mask(fn, x, frame_hw), what)


def _timed(fns: dict, feeds: dict, repeats: int, warmup: int, pause_ms: float) -> dict[str, dict]:
    """--in-process, the older protocol kept for comparison: p50/p90... of every fn alternated run by run in this
    process with ``pause_ms`` of idle before each run; at 0, each fn timed alone, back to back."""
    from sdk.timing import measure_latency

    if pause_ms > 0:
        return measure_latency(fns, feeds.__getitem__, repeats, warmup=warmup, pause_s=pause_ms / 1e3)
    return {n: measure_latency({n: fn}, feeds.__getitem__, repeats, warmup=warmup, pause_s=0.0)[n]
            for n, fn in fns.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True, help="Hugging Face folder (transformers loads it)")
    ap.add_argument("--camvid", type=Path, required=True)
    ap.add_argument("--num-samples", type=int, default=300, help="calibration frames from CamVid train")
    ap.add_argument("--every", type=int, default=1, help="score every k-th test image (1: all 233)")
    ap.add_argument("--ours", type=_ours, action="append", default=[], metavar="NAME=PATH",
                    help="one of our artifact folders to score and time beside the peers (repeatable); @RUNTIME after "
                         "the path names its runtime (default: auto, as Segmenter picks)")
    ap.add_argument("--max-drop", type=float, default=0.5, help="mIoU points vs ort-fp32 for a peer to count as "
                                                                "'best peer'")
    ap.add_argument("--pauses-ms", default="100,33,0",
                    help="idle time before each timed run, one pass per value: 100 (a frame every 0.1 s; the ratios' "
                         "primary pass), 33 (a 30 fps camera's frame period), 0 (back to back, as a saturated "
                         "pipeline feeds it)")
    ap.add_argument("--repeats", type=int, default=30, help="timed runs per variant and pass, split over the rounds")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first, in each process")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating rounds; each times every variant alone in a fresh process of its own")
    ap.add_argument("--in-process", action="store_true",
                    help="the older protocol, for comparison: all variants in this process, alternated run by run")
    ap.add_argument("--workdir", type=Path, help="where the peers' models go (default: a temporary folder)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.every < 1 or args.repeats < 1 or args.rounds < 1 or args.warmup < 0:
        ap.error("--every, --repeats, --rounds: expected >= 1; --warmup: expected >= 0")
    try:
        pauses = [float(v) for v in args.pauses_ms.split(",")]
    except ValueError:
        pauses = []
    if not pauses or any(not 0 <= v <= 10_000 for v in pauses) or len(set(pauses)) != len(pauses):
        ap.error(f"--pauses-ms: expected distinct comma-separated milliseconds from 0 to 10000, got {args.pauses_ms!r}")
    if len({n for n, _, _ in args.ours}) != len(args.ours):
        ap.error("--ours: names must differ")

    import torch
    import transformers

    from calibration.datasets import CamVid
    from calibration.metrics import ConfusionMatrix
    from sdk.core.cpu import host_isa
    from sdk.core.manifest import model_feeds
    from sdk.core.postprocess import masks_from_logits
    from sdk.core.preprocess import preprocess, read_rgb
    from sdk.core.result import agreeing_pixels
    from sdk.segmenter import Segmenter
    from sdk.timing import environment
    from sdk.timing.isolated import Timed, artifact_variant, in_process, save_input, time_isolated

    t_start = time.perf_counter()
    transformers.logging.disable_progress_bar()
    processor = transformers.AutoImageProcessor.from_pretrained(args.checkpoint)

    def hf_input(image: np.ndarray) -> np.ndarray:
        return processor(images=image, return_tensors="np")["pixel_values"].astype(np.float32)

    data = list(CamVid(args.camvid, "test"))[:: args.every]
    frame_hw = data[0][0].shape[:2]
    input_hw = hf_input(data[0][0]).shape[2:]
    calib_paths = _calibration_paths(args.camvid, args.num_samples)
    calib_x = [hf_input(read_rgb(p)) for p in calib_paths]
    if any(x.shape[2:] != input_hw for x in calib_x) or any(im.shape[:2] != frame_hw for im, _ in data):
        raise SystemExit(f"frames of different sizes: the plain export is static at {input_hw[0]}x{input_hw[1]}")
    tmp = tempfile.TemporaryDirectory(prefix="segedge-peers-")
    work = args.workdir or Path(tmp.name)
    print(f"building the peers ({len(calib_x)} calibration frames, network input {input_hw[0]}x{input_hw[1]})",
          flush=True)
    peer_fns, build_s, described, peer_files = build_peers(args.checkpoint, calib_x, work)

    segs = {name: Segmenter.from_artifact(path, runtime=runtime) for name, path, runtime in args.ours}
    try:
        names = list(PEERS) + list(segs)
        cms = {n: ConfusionMatrix(11, 255) for n in names}
        agree = {n: [0, 0] for n in names}
        t = time.perf_counter()
        with torch.inference_mode():
            for image, label in data:
                x = hf_input(image)
                masks = {n: peer_mask(peer_fns[n], x, frame_hw)[0] for n in PEERS}
                masks.update({n: s(image).mask for n, s in segs.items()})
                for n, m in masks.items():
                    cms[n].update(m, label)
                    s_, p_ = agreeing_pixels(m, masks["ort-fp32"])
                    agree[n][0] += s_
                    agree[n][1] += p_
        eval_s = time.perf_counter() - t

        x0 = hf_input(data[0][0])
        fns = {n: (lambda f, fn=peer_fns[n]: peer_mask(fn, f, frame_hw)) for n in PEERS}
        feeds = {n: x0 for n in PEERS}
        x0_npy = save_input(work / "timing", "peers", x0)
        timed = [Timed(name=n, factory="benchmarks.bench_peers:open_peer",
                       args={"name": n, "path": peer_files[n], "pixel_values": x0_npy, "frame_hw": list(frame_hw)})
                 for n in PEERS]
        for n, s in segs.items():
            m = s.manifest
            feeds[n] = model_feeds(m, preprocess(data[0][0], m.preprocess), frame_hw)
            fns[n] = ((lambda f, s=s: s.runtime.infer(f)["mask"]) if m.head == "mask" else
                      (lambda f, s=s: masks_from_logits(s.runtime.infer(f), frame_hw)))
            timed.append(artifact_variant(n, s.runtime.artifact, runtime=s.runtime.name, what="mask",
                                          pixel_values=save_input(work / "timing", n, feeds[n]["pixel_values"]),
                                          output_hw=frame_hw))
        lat_by: dict[str, dict] = {}
        how_by: dict[str, dict] = {}
        for pause in pauses:
            if args.in_process:
                print(f"timing {len(fns)} in this process, {'one after another' if pause == 0 else 'side by side'}, "
                      f"{args.repeats} runs each, {pause:g} ms idle before each", flush=True)
                with torch.inference_mode():
                    lat_by[f"{pause:g}"] = _timed(fns, feeds, args.repeats, args.warmup, pause)
                how_by[f"{pause:g}"] = in_process(pause_s=pause / 1e3, repeats=args.repeats, warmup=args.warmup)
                continue
            print(f"timing {len(timed)} variants, each alone in its own process, {args.rounds} alternating rounds, "
                  f"{pause:g} ms idle before each run", flush=True)
            got = time_isolated(timed, rounds=args.rounds, runs=-(-args.repeats // args.rounds), warmup=args.warmup,
                                pause_s=pause / 1e3)
            lat_by[f"{pause:g}"], how_by[f"{pause:g}"] = got["variants"], got["isolation"]
        lat = lat_by[f"{pauses[0]:g}"]
        ours_described = {n: s.runtime.describe() for n, s in segs.items()}
        ours_meta = {n: {"format": s.manifest.format, "precision": s.manifest.precision,
                         "network_hw": list(feeds[n]["pixel_values"].shape[2:])} for n, s in segs.items()}
    finally:
        for s in segs.values():
            s.close()

    ref_miou = cms["ort-fp32"].miou()
    rows = []
    for n in names:
        peer = n in PEERS
        rows.append({"name": n, "kind": "peer" if peer else "ours",
                     "what": RECIPES[n] if peer else str(segs[n].runtime.artifact),
                     "runtime_description": described[n] if peer else ours_described[n],
                     **({} if peer else ours_meta[n]),
                     "build_seconds": build_s.get(n), "miou": cms[n].miou(),
                     "iou_per_class": dict(zip(CamVid(args.camvid).class_names,
                                               [None if np.isnan(v) else float(v) for v in cms[n].iou()])),
                     "drop_points": 100 * (ref_miou - cms[n].miou()), "agreement": agree[n][0] / agree[n][1],
                     "latency_ms": lat[n], "latency_by_pause_ms": {p: v[n] for p, v in lat_by.items()}})
    by = {r["name"]: r for r in rows}
    within = [r for r in rows if r["kind"] == "peer" and r["drop_points"] <= args.max_drop]
    best_peer = min(within, key=lambda r: r["latency_ms"]["p50_ms"])["name"] if within else None
    ratios = {o: {p: by[p]["latency_ms"]["p50_ms"] / by[o]["latency_ms"]["p50_ms"] for p in PEERS} for o in segs}
    ratios_by = {pause: {o: {p: v[p]["p50_ms"] / v[o]["p50_ms"] for p in PEERS} for o in segs}
                 for pause, v in lat_by.items()}

    print(f"\nmachine: {host_isa()}; CamVid test every {args.every} ({len(data)} images), frames "
          f"{frame_hw[0]}x{frame_hw[1]}; p50/p90 model only, timed {how_by[f'{pauses[0]:g}']['text']}; "
          "agreement vs ort-fp32")
    w = max(len(n) for n in names)
    print(f"{'variant':<{w}} {'kind':<5} {'mIoU':>7} {'drop':>6} {'agree':>7} {'p50 ms':>7} {'p90 ms':>7} "
          f"{'build s':>7}" + ("  peer p50 / ours p50: " + " ".join(f"{p:>10}" for p in PEERS) if ratios else ""))
    for r in rows:
        build = "-" if r["build_seconds"] is None else f"{r['build_seconds']:.0f}"
        line = (f"{r['name']:<{w}} {r['kind']:<5} {100 * r['miou']:>7.2f} {r['drop_points'] + 0.0:>+6.2f} "
                f"{r['agreement']:>7.2%} {r['latency_ms']['p50_ms']:>7.1f} {r['latency_ms']['p90_ms']:>7.1f} "
                f"{build:>7}")
        if r["name"] in ratios:
            line += " " * 22 + " ".join(f"{ratios[r['name']][p]:>9.2f}x" for p in PEERS)
        print(line)
    print(f"best peer within {args.max_drop} pt of ort-fp32: {best_peer or 'none'}"
          + "".join(f"; {o}: {ratios[o][best_peer]:.2f}x its speed (p50 ratio)" for o in ratios if best_peer))
    if best_peer:
        for pause, r in ratios_by.items():
            print(f"  {pause} ms idle before each run: " + ", ".join(
                f"{o} {lat_by[pause][o]['p50_ms']:.1f} ms = {r[o][best_peer]:.2f}x {best_peer} "
                f"({lat_by[pause][best_peer]['p50_ms']:.1f} ms)" for o in r))
    for n in names:
        print(f"  {n}: {by[n]['runtime_description']}")

    result = {"schema": SCHEMA, "command": "python -m benchmarks.bench_peers " + " ".join(
                  shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
              "environment": {**environment(torch=torch.get_num_threads()), "isa": host_isa()},
              "checkpoint": str(args.checkpoint), "split": "test", "every": args.every, "images": len(data),
              "frame_hw": list(frame_hw), "input_hw": list(input_hw),
              "export": {"exporter": "torch.onnx.export (PyTorch's default exporter)", "opset": 17,
                         "shape": f"static 1x3x{input_hw[0]}x{input_hw[1]}", "output": "logits"},
              "post_processing": "peers: torch bilinear (align_corners=False) to the frame size, argmax; ours: the "
                                 "artifact's head",
              "calibration": {"source": str(args.camvid / "train.txt"), "frames": len(calib_x),
                              "selection": "spread evenly over train.txt", "preprocessing": type(processor).__name__},
              "timing": {"repeats": args.repeats, "warmup": args.warmup, "input": "the first test frame",
                         "pauses_ms": pauses, "primary_pause_ms": pauses[0],
                         "isolation": how_by[f"{pauses[0]:g}"], "isolation_by_pause_ms": how_by,
                         "protocol": ("pause > 0: all variants alternated run by run in one process, that long idle "
                                      "before each run; pause 0: each variant timed alone, back to back, one after "
                                      "another" if args.in_process else how_by[f"{pauses[0]:g}"]["text"]
                                      + "; one such pass per pause")},
              "max_drop": args.max_drop, "rows": rows, "best_peer": best_peer, "ratios_p50": ratios,
              "ratios_p50_by_pause_ms": ratios_by,
              "seconds": {"total": time.perf_counter() - t_start, "evaluate": eval_s}}
    print(f"total {result['seconds']['total']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

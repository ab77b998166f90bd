"""Peak memory of ``segedge quantize`` calibrating on full-size video frames, one fresh process per run.

    nice -n 19 python -m benchmarks.calib_memory --checkpoint ../shared/models/segformer-b0-camvid-hf \
        --video ../shared/video/sidewalk.mp4 --frames 16 64 300 --run tensorrt --run onnxruntime:entropy \
        --json docs/benchmarks/calib_memory.json

The checkpoint is exported once (``segedge export``: dynamic size, so calibration runs at the video's own frame
size, 720x1280 for sidewalk.mp4); each run is then ``segedge quantize FP32 --backend B [--method M] --calib VIDEO
--num-samples N`` in its own process, whose peak resident memory is the kernel's ``ru_maxrss`` for that process
(``os.wait4``). A video with fewer frames than asked for is extended once, forward then backward (ping-pong), into
an mp4 in the work folder, so N frames are N distinct decodes of real footage. Writes --json (schema
segedge.calib_memory/1): per run the frames, frame size, backend, method and slice size the artifact records, peak
MiB, wall seconds and the exact command; the machine's CPU class and ISA flags; the target (--target-mib).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCHEMA = "segedge.calib_memory/1"


def video_info(path: Path) -> tuple[int, tuple[int, int]]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    count, hw = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), (int(cap.get(4)), int(cap.get(3)))
    cap.release()
    if count <= 0:
        raise SystemExit(f"--video {path}: OpenCV reads no frames from it")
    return count, hw


def extended_video(path: Path, frames: int, workdir: Path) -> Path:
    """``path`` itself when it has ``frames`` frames, else a ping-pong copy (0..n-1, n-2..0, ...) of that length."""
    import cv2

    count, (h, w) = video_info(path)
    if count >= frames:
        return path
    out = workdir / f"{path.stem}-pingpong-{frames}.mp4"
    if out.is_file() and video_info(out)[0] >= frames:
        return out
    cap = cv2.VideoCapture(str(path))
    clip = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        clip.append(frame)
    cap.release()
    order = (list(range(len(clip))) + list(range(len(clip) - 2, 0, -1))) * (frames // max(1, len(clip)) + 1)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for i in order[:frames]:
        writer.write(clip[i])
    writer.release()
    return out


def run_measured(cmd: list[str]) -> tuple[int, float, int]:
    """(exit status, wall seconds, peak RSS in MiB of that one process and the children it waited for)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(output[-3000:], file=sys.stderr)
    return proc.returncode, wall, usage.ru_maxrss // 1024  # Linux: KiB


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="checkpoint or an FP32 ONNX artifact (dynamic size)")
    ap.add_argument("--video", required=True)
    ap.add_argument("--frames", type=int, nargs="+", default=[16, 64, 300])
    ap.add_argument("--run", action="append", metavar="BACKEND[:METHOD]",
                    help="repeatable; default tensorrt (its default method) and onnxruntime:entropy")
    ap.add_argument("--calib-memory-mib", type=int, default=2048)
    ap.add_argument("--target-mib", type=int, default=4096)
    ap.add_argument("--workdir", help="scratch folder (default: a temporary one)")
    ap.add_argument("--json", required=True)
    ap.add_argument("--append", action="store_true", help="keep the rows of an existing --json file (a run of the "
                                                            "same frames, backend and method replaces its row)")
    args = ap.parse_args(argv)
    from sdk.core.cpu import host_isa
    from sdk.core.manifest import MANIFEST_NAME, read_manifest
    from sdk.timing import environment

    runs = [r.split(":", 1) if ":" in r else [r, None] for r in (args.run or ["tensorrt", "onnxruntime:entropy"])]
    keep = tempfile.TemporaryDirectory(prefix="segedge-calibmem-") if not args.workdir else None
    work = Path(args.workdir or keep.name)
    work.mkdir(parents=True, exist_ok=True)
    segedge = [sys.executable, "-m", "sdk.cli"]
    fp32 = Path(args.checkpoint)
    if not (fp32 / MANIFEST_NAME).is_file():
        fp32 = work / "fp32"
        subprocess.run(segedge + ["export", args.checkpoint, "--output", str(fp32), "-q"], check=True)
    rows = []
    for frames in args.frames:
        video = extended_video(Path(args.video), frames, work)
        _, hw = video_info(video)
        for backend, method in runs:
            out = work / f"q-{backend}-{method or 'default'}-{frames}"
            cmd = segedge + ["quantize", str(fp32), "--backend", backend, "--calib", str(video), "--num-samples",
                             str(frames), "--calib-memory-mib", str(args.calib_memory_mib), "--output", str(out), "-q"]
            cmd += ["--method", method] if method else []
            rc, wall, peak = run_measured(cmd)
            q = read_manifest(out).extra.get("quantization", {}) if rc == 0 else {}
            row = {"frames": frames, "frame_hw": list(hw), "backend": backend, "method": q.get("method", method),
                   "calib_slice_frames": q.get("calib_slice_frames"), "peak_rss_mib": peak, "wall_s": round(wall, 1),
                   "exit_status": rc, "within_target": rc == 0 and peak < args.target_mib,
                   "video": video.name, "command": "segedge " + shlex.join(cmd[3:])}
            rows.append(row)
            print(f"{frames:4d} frames {hw[0]}x{hw[1]} {backend:12s} {row['method'] or '-':10s} slice "
                  f"{row['calib_slice_frames']}: peak {peak} MiB, {wall:.0f} s, exit {rc}", flush=True)
    command = "python -m benchmarks.calib_memory " + shlex.join(argv or sys.argv[1:])
    old = json.loads(Path(args.json).read_text()) if args.append and Path(args.json).is_file() else {}
    key = lambda r: (r["frames"], r["backend"], r["method"])  # noqa: E731
    rows = sorted([r for r in old.get("rows", []) if key(r) not in {key(n) for n in rows}] + rows,
                  key=lambda r: (r["backend"], str(r["method"]), r["frames"]))
    commands = [c for c in old.get("command", "").split("; ") if c and c != command] + [command]
    doc = {"schema": SCHEMA, "command": "; ".join(commands), "target_mib": args.target_mib,
           "calib_memory_mib": args.calib_memory_mib, "source": args.checkpoint, "rows": rows,
           "environment": {**environment(), "isa": host_isa()}}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0 if all(r["exit_status"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""``segedge doctor``: what this machine can run, and the command that installs what is missing.

CPU features that decide the INT8/BF16 kernels (AVX2, AVX-512, VNNI, BF16, AMX; through ``sdk.core.cpu``), the
runtimes with their devices (OpenVINO CPU/GPU/NPU, ONNX Runtime's execution providers), TensorRT, pycuda and the
CUDA driver's GPUs, OpenCV's video back-ends (GStreamer for CSI cameras, FFMPEG for files and RTSP, HighGUI for a
window), the conversion/quantization/report packages, and per job whether it can run here.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
from pathlib import Path
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec

from sdk.core.errors import EXTRAS, extras_for

# (import name, distribution name, extra that installs it: sdk.core.errors.EXTRAS)
PACKAGES = tuple((module, dist, EXTRAS[module]) for module, dist in (
    ("onnxruntime", "onnxruntime"), ("openvino", "openvino"), ("cv2", "opencv-python-headless"), ("torch", "torch"),
    ("onnx", "onnx"), ("onnxscript", "onnxscript"), ("safetensors", "safetensors"), ("nncf", "nncf"),
    ("matplotlib", "matplotlib"), ("tensorrt", "tensorrt"), ("pycuda", "pycuda"), ("transformers", "transformers")))
# job -> (the commands, the modules it needs); the extras that install them come from sdk.core.errors.EXTRAS
JOBS = (("run ONNX artifacts", "predict, stream, eval, bench (onnx)", ("onnxruntime", "cv2")),
        ("run OpenVINO IR", "predict, stream, eval, bench (openvino)", ("openvino", "cv2")),
        ("convert a checkpoint", "export, export-openvino, demo", ("torch", "onnx", "safetensors", "onnxruntime")),
        ("INT8 for ONNX Runtime / TensorRT Q/DQ", "quantize --backend onnxruntime|tensorrt", ("onnx", "onnxruntime")),
        ("INT8 for OpenVINO", "quantize --backend openvino", ("nncf", "openvino", "onnx")),
        ("reports", "report", ("matplotlib", "onnxruntime", "onnx")),
        ("TensorRT engines", "build, predict/stream/bench (engine)", ("tensorrt",)))
FEATURES = (("AVX2", ("avx2",)), ("AVX-512", ("avx512f",)), ("VNNI", ("avx512_vnni", "avx_vnni")),
            ("BF16", ("avx512_bf16",)), ("AMX", ("amx_int8",)), ("NEON dot product", ("asimddp",)))


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(dist: str, module: str) -> str | None:
    for name in (dist, module, "opencv-python", "opencv-contrib-python") if module == "cv2" else (dist,):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _onnxruntime() -> dict:
    import onnxruntime as ort

    return {"version": ort.__version__, "providers": ort.get_available_providers()}


def _openvino() -> dict:
    import openvino as ov

    core = ov.Core()
    devices = {}
    for dev in core.available_devices:
        try:
            devices[dev] = str(core.get_property(dev, "FULL_DEVICE_NAME"))
        except Exception as exc:  # a plugin that cannot describe itself: still listed, with why
            devices[dev] = f"(no name: {_first_line(exc)})"
    return {"version": ov.__version__.split("-")[0], "devices": devices}


def _opencv() -> dict:
    import cv2

    info = cv2.getBuildInformation()

    def backend(name: str) -> str:
        m = re.search(rf"^\s*{name}:\s*(\S+)", info, re.MULTILINE)
        return m.group(1) if m else "NO"

    gui = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
    return {"version": cv2.__version__, "gstreamer": backend("GStreamer").upper() == "YES",
            "ffmpeg": backend("FFMPEG").upper() == "YES",
            "highgui": gui is not None and gui.group(1).upper() != "NONE"}


def _tensorrt() -> dict:
    import importlib

    from runtimes.tensorrt_support import unsupported_reason

    tensorrt = importlib.import_module("tensorrt")  # Any: the stubs' namespace package has no __version__
    if not hasattr(tensorrt, "Builder"):  # the type stubs or NVIDIA's pip placeholder: an empty namespace
        return {"usable": False, "why": "the tensorrt package here has no Builder (type stubs or pip placeholder)"}
    version = str(tensorrt.__version__)
    reason = unsupported_reason(version)
    if reason:
        return {"usable": False, "version": version, "why": reason}
    try:
        dla = int(tensorrt.Builder(tensorrt.Logger(tensorrt.Logger.ERROR)).num_DLA_cores)
    except Exception as exc:  # no GPU or driver: the version is still worth showing
        return {"usable": True, "version": version, "dla_cores": None, "dla_why": _first_line(exc)}
    return {"usable": True, "version": version, "dla_cores": dla}


def _jetson(trt: dict | None) -> dict | None:
    """On a Jetson (an L4T release in /etc/nv_tegra_release): the L4T release, the CUDA, the board, TensorRT and its
    DLA cores, and the support table's row that applies (``runtimes.tensorrt_support``); None elsewhere."""
    from runtimes.tensorrt_device import device_model, host_platform
    from runtimes.tensorrt_support import line_for_l4t, line_for_tensorrt

    plat = host_platform()
    l4t = plat.split(" L4T ", 1)[1] if " L4T " in plat else ""
    if not l4t:
        return None
    version = (trt or {}).get("version")
    row = (line_for_tensorrt(version) if version else None) or line_for_l4t(l4t)
    cuda = Path("/usr/local/cuda/version.json")
    cuda_version = None
    if cuda.is_file():
        try:
            cuda_version = json.loads(cuda.read_text()).get("cuda", {}).get("version")
        except (OSError, ValueError, AttributeError):
            cuda_version = None
    return {"l4t": l4t, "board": device_model() or None, "cuda": cuda_version,
            "tensorrt": version, "dla_cores": (trt or {}).get("dla_cores"),
            "row": None if row is None else {"jetpack": row.jetpack, "supported": row.supported, "builds": row.builds,
                                             "dla": row.dla}}


def _cuda() -> dict:
    from runtimes.tensorrt_device import CudaDriver
    from sdk.core.errors import MissingDependencyError, SegEdgeError

    try:
        driver = CudaDriver()
    except MissingDependencyError:
        return {"gpus": [], "why": "no NVIDIA driver: libcuda.so.1 not found"}
    except SegEdgeError as exc:
        return {"gpus": [], "why": _first_line(exc)}
    gpus = []
    for index in range(16):
        try:
            name, capability = driver.device(index)
        except SegEdgeError:
            break
        gpus.append({"index": index, "name": name, "compute_capability": capability})
    return {"gpus": gpus}


def diagnose() -> dict:
    """Everything ``segedge doctor`` prints, as a JSON-ready dict."""
    from runtimes.tensorrt_support import INSTALL_TENSORRT
    from sdk.core.cpu import host_isa
    from sdk.timing import environment

    env = environment()
    isa = host_isa()
    flags = set(env["cpu_flags"])
    out: dict = {"segedge": _version("segedge", "sdk"), "python": platform.python_version(),
                 "platform": platform.platform(),
                 "cpu": {"model": env["cpu_model"], "logical_cpus": env["logical_cpus"], "int8_class": isa["class"],
                         "features": {name: any(f in flags for f in keys) for name, keys in FEATURES}},
                 "packages": {}, "details": {}}
    for module, dist, extra in PACKAGES:
        out["packages"][module] = {"installed": _installed(module), "version": _version(dist, module),
                                   "extra": extra}
    probes = {"onnxruntime": _onnxruntime, "openvino": _openvino, "cv2": _opencv, "tensorrt": _tensorrt}
    for module, probe in probes.items():
        if out["packages"][module]["installed"]:
            try:
                out["details"][module] = probe()
            except Exception as exc:  # a broken install is a finding, not a crash: shown with its first line
                out["details"][module] = {"error": _first_line(exc)}
    out["details"]["cuda"] = _cuda()
    out["jetson"] = _jetson(out["details"].get("tensorrt"))
    usable = {m: p["installed"] for m, p in out["packages"].items()}
    if "tensorrt" in out["details"]:
        usable["tensorrt"] = bool(out["details"]["tensorrt"].get("usable"))
    out["jobs"] = [{"job": job, "commands": commands, "ready": all(usable[m] for m in needs),
                    "missing": [m for m in needs if not usable[m]],
                    # TensorRT comes from JetPack's steps, never from the jetson extra (onnx only)
                    "install": (INSTALL_TENSORRT if "tensorrt" in needs
                                else f"pip install 'segedge[{extras_for(needs)}]'")}
                   for job, commands, needs in JOBS]
    return out


def usable_trt(d: dict) -> bool:
    return bool(d["details"].get("tensorrt", {}).get("usable"))


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def format_report(d: dict) -> str:
    """The people-facing text of ``diagnose()``."""
    from runtimes.tensorrt_support import INSTALL_TENSORRT

    cpu = d["cpu"]
    lines = [f"segedge {d['segedge'] or '(not installed as a package)'} · Python {d['python']} · {d['platform']}",
             f"CPU: {cpu['model']} ({cpu['logical_cpus']} logical), INT8 class {cpu['int8_class']}",
             "  " + ", ".join(f"{k} {_yes(v)}" for k, v in cpu["features"].items())]
    det = d["details"]
    ort = det.get("onnxruntime")
    lines.append("ONNX Runtime: " + ("not installed" if ort is None else ort.get("error") or
                                    f"{ort['version']}, providers {', '.join(ort['providers'])}"))
    ov = det.get("openvino")
    lines.append("OpenVINO: " + ("not installed" if ov is None else ov.get("error") or
                                f"{ov['version']}, devices " + ", ".join(f"{k} ({v})" for k, v in ov["devices"].items())))
    trt = det.get("tensorrt")
    lines.append("TensorRT: " + ("not installed" if trt is None else trt.get("error") or
                                (trt["version"] if trt["usable"] else f"not usable: {trt['why']}")))
    pycuda = d["packages"]["pycuda"]
    lines.append(f"pycuda: {pycuda['version'] if pycuda['installed'] else 'not installed'} (optional: the TensorRT "
                 "runtime calls the CUDA driver itself)")
    cuda = det["cuda"]
    lines.append("CUDA GPUs: " + (", ".join(f"{g['index']}: {g['name']} (sm_{g['compute_capability'].replace('.', '')})"
                                            for g in cuda["gpus"]) or f"none ({cuda.get('why', 'no device')})"))
    cv = det.get("cv2")
    lines.append("OpenCV: " + ("not installed" if cv is None else cv.get("error") or
                              f"{cv['version']}, GStreamer {_yes(cv['gstreamer'])} (csi:// cameras), FFMPEG "
                              f"{_yes(cv['ffmpeg'])} (files, RTSP), HighGUI {_yes(cv['highgui'])} (a window)"))
    others = [f"{m} {p['version'] or ''}".strip() if p["installed"] else f"{m} missing"
              for m, p in d["packages"].items() if m in ("torch", "onnx", "safetensors", "nncf", "matplotlib",
                                                         "transformers")]
    lines.append("Packages: " + ", ".join(others))
    lines.append("Jobs:")
    for job in d["jobs"]:
        how = "the TensorRT note below" if job["install"] == INSTALL_TENSORRT else job["install"]
        state = "ready" if job["ready"] else f"missing {', '.join(job['missing'])}: {how}"
        lines.append(f"  {job['job']:<38} {job['commands']:<40} {state}")
    if ort is not None and "CUDAExecutionProvider" not in ort.get("providers", []):
        lines.append("note: ONNX Runtime on an NVIDIA GPU (--device cuda) needs onnxruntime-gpu instead of onnxruntime")
    if ov is not None and not {"GPU", "NPU"} & set(ov.get("devices", {})):
        lines.append("note: OpenVINO GPU/NPU (--device GPU|NPU) need Intel's GPU (compute-runtime) or NPU driver")
    jetson = d.get("jetson")
    if jetson:
        row = jetson["row"]
        dla = jetson["dla_cores"]
        lines.append(f"Jetson: L4T {jetson['l4t'] or '?'}, {jetson['board'] or 'board unknown'}, CUDA "
                     f"{jetson['cuda'] or '?'}, TensorRT {jetson['tensorrt'] or 'not found'}, "
                     f"DLA cores {'?' if dla is None else dla}, Python {d['python']}")
        lines.append("  support table: " + ("no row for this release (docs/JETSON.md)" if row is None else
                                            f"JetPack {row['jetpack']}: " + (f"{row['builds']}; DLA {row['dla']}"
                                                                           if row["supported"] else row["builds"])))
    if not usable_trt(d):
        lines.append(f"note: {INSTALL_TENSORRT}")
    if cv is not None and not cv.get("gstreamer", True):
        lines.append("note: csi:// cameras need an OpenCV built with GStreamer (JetPack's system OpenCV; pip's wheels "
                     "lack it)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    report = diagnose()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def add_parser(sub) -> None:
    """Register ``segedge doctor``. Imports nothing heavy."""
    p = sub.add_parser("doctor", help="this machine: CPU features, runtimes and devices, GStreamer, what is missing "
                                      "and how to install it")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=run)

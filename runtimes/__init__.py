"""Runtimes behind one interface. Choose one by name from ``RUNTIMES``, or ``"auto"``.

``runtimes`` never imports ``converters`` or ``calibration``; heavy backends load only when a runtime opens.
"""
from __future__ import annotations

import logging
from importlib.util import find_spec
from pathlib import Path

from runtimes.base import Runtime, construct
from runtimes.onnxruntime import OnnxRuntime
from runtimes.openvino import OpenVINORuntime
from runtimes.tensorrt import TensorRTRuntime
from sdk.core.errors import EXTRAS, ArtifactError, MissingDependencyError
from sdk.core.manifest import Manifest, read_manifest, resolve_artifact

log = logging.getLogger("segedge")

# "auto" measures the installed ones that run the artifact (runtimes/choose.py); with SEGEDGE_AUTO_RUNTIME=first it
# takes the first entry that runs the format: ONNX artifacts go to ONNX Runtime, IR to OpenVINO
RUNTIMES: dict[str, type[Runtime]] = {"onnxruntime": OnnxRuntime, "openvino": OpenVINORuntime,
                                      "tensorrt": TensorRTRuntime}
# which Python module each runtime needs, and the pip extra that installs it (TensorRT: JetPack, see INSTALL_TENSORRT)
_NEEDS = {name: (name, EXTRAS[name]) for name in ("onnxruntime", "openvino", "tensorrt")}  # runtime -> (module, extra)


def open_runtime(artifact: str | Path, runtime: str = "auto", *, device: str | int | None = None,
                 **options) -> Runtime:
    """Open an artifact folder on a runtime. ``"auto"`` picks, among the installed runtimes that can run the
    artifact (and take ``options``), the fastest on this machine, measured once and cached (``runtimes.choose``;
    ``SEGEDGE_AUTO_RUNTIME=first``: the first in ``RUNTIMES`` order); the runtime's ``auto_choice`` says which and
    why. A runtime named here always wins. device: cpu, cuda[:N], tensorrt, GPU[.N], NPU, AUTO or a GPU index,
    mapped to the runtime (with "auto": the one the device needs) and its options (``runtimes.devices``).
    ``options`` go to the runtime's constructor."""
    artifact = resolve_artifact(artifact)  # the model file inside an artifact folder works too
    manifest: Manifest = read_manifest(artifact)
    if device is not None:
        from runtimes.devices import device_options, merge_options

        runtime, mapped = device_options(manifest.format, runtime, device)
        options = merge_options(device, mapped, options)
    if runtime != "auto":
        if runtime not in RUNTIMES:
            raise ArtifactError(f"runtime: expected 'auto' or one of {sorted(RUNTIMES)}, got {runtime!r}")
        return construct(RUNTIMES[runtime], artifact, manifest, options)
    candidates = [name for name, cls in RUNTIMES.items() if manifest.format in cls.formats]
    if any(find_spec(_NEEDS[name][0]) is not None for name in candidates):
        from runtimes.choose import choose

        chosen = choose(RUNTIMES, artifact, manifest, options, _NEEDS)
        if chosen is not None:
            return chosen
        names = [n for n in candidates if find_spec(_NEEDS[n][0]) is not None]  # installed, but none can run it
        return construct(RUNTIMES[names[0]], artifact, manifest, options)  # its error says why
    if not candidates:
        raise ArtifactError(f"artifact {artifact}: no runtime runs format {manifest.format!r}")
    if candidates == ["tensorrt"]:  # not from pip: the jetson extra installs only onnx (what segedge build needs)
        from runtimes.tensorrt_support import INSTALL_TENSORRT

        raise MissingDependencyError(f"artifact {artifact} ({manifest.format}) needs TensorRT, which is not installed. "
                                     f"{INSTALL_TENSORRT}")
    extras = ", ".join(f"segedge[{_NEEDS[n][1]}]" for n in candidates)
    raise MissingDependencyError(f"artifact {artifact} ({manifest.format}) needs one of {candidates}; none is "
                                 f"installed. Install: pip install '{extras}'")


__all__ = ["RUNTIMES", "Runtime", "OnnxRuntime", "OpenVINORuntime", "TensorRTRuntime", "open_runtime"]

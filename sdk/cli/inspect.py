"""``segedge inspect``: describe an artifact or a checkpoint."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.is_file() and (path.parent / "model.json").is_file():
        path = path.parent  # a model file inside an artifact folder (e.g. out/b0.engine/model.engine)
    if (path / "model.json").exists():
        from sdk.core.manifest import read_manifest

        m = read_manifest(path)
        info = {"artifact": str(path), "format": m.format, "precision": m.precision, "head": m.head,
                "upsample": m.upsample, "variant": m.architecture.get("variant"), "classes": m.class_names,
                "preprocess": m.preprocess.to_dict(), "inputs": [vars(t) for t in m.inputs],
                "outputs": [vars(t) for t in m.outputs], "opset": m.opset, "source": m.source, "parity": m.parity,
                "versions": m.versions}
    else:
        from converters.checkpoints import load_checkpoint

        ck = load_checkpoint(path)
        info = {"checkpoint": str(path), "layout": ck.layout, "variant": ck.config.variant,
                "num_classes": ck.config.num_classes, "classes": ck.class_names,
                "parameters": sum(p.numel() for p in ck.model.parameters()),
                "preprocess": ck.preprocess.to_dict(), "sha256": ck.sha256}
    print(json.dumps(info, indent=2))
    return 0


def add_parser(sub) -> None:
    """Register ``segedge inspect``. Imports nothing heavy."""
    p = sub.add_parser("inspect", help="describe an artifact or a checkpoint")
    p.add_argument("path")
    p.set_defaults(func=run)

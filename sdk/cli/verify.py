"""``segedge verify``: run an artifact here against its FP32 reference; exit 1 when it no longer holds. A thin
wrapper over ``calibration.verify.verify``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from calibration.verify import verify

    report = verify(args.artifact, reference=args.reference, data=args.data, min_agreement=args.min_agreement,
                    margin_points=args.margin_points, runtime=args.runtime, samples=args.samples,
                    progress=not args.quiet)
    print(report.table())
    if args.json:
        Path(args.json).write_text(json.dumps({**report.__dict__, "passed": report.passed}, indent=2) + "\n")
    return 0 if report.passed else 1


def add_parser(sub) -> None:
    """Register ``segedge verify``. Imports nothing heavy."""
    from sdk.core.records import MIN_AGREEMENT

    p = sub.add_parser("verify", help="check an artifact on this machine against its FP32 reference (exit 1 if not)")
    p.add_argument("artifact", help="any artifact folder (INT8 ONNX / OpenVINO IR / TensorRT engine, ...)")
    p.add_argument("--reference", help="the FP32 ONNX artifact to compare with (default: the reference frames and "
                                       "FP32 masks the artifact carries)")
    p.add_argument("--data", help="labelled set (CamVid/Cityscapes root, ADE20K folder, images/+labels/): also mIoU; "
                                  "with --reference, agreement is measured on its images")
    p.add_argument("--samples", type=int, default=0, help="use at most this many images of --data (0: all)")
    p.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT,
                   help=f"fail under this pixel agreement (fraction; default {MIN_AGREEMENT}, as segedge quantize)")
    p.add_argument("--margin-points", type=float, default=0.3,
                   help="fail when agreement is more than this many points under the value recorded at quantize time "
                        "(default 0.3: an artifact on a CPU class it was not made for measured 0.47-0.83 under)")
    p.add_argument("--runtime", default="auto", help="runtime to run the artifact with (default: auto)")
    p.add_argument("--json", help="write the report as JSON here")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)

"""``segedge serve``: write the Triton repository for an artifact and run a real tritonserver on it until Ctrl-C."""
from __future__ import annotations

import argparse


def client_line(url: str, model: str, protocol: str) -> str:
    """A ready-to-run client command for the served model."""
    return (f"python -c \"from sdk.serving import TritonSegmenter; from sdk.core.preprocess import read_rgb; "
            f"seg = TritonSegmenter('{url}', '{model}', protocol='{protocol}'); "
            f"print(seg(read_rgb('street.png')).class_areas())\"")


def run(args: argparse.Namespace) -> int:
    import signal
    import tempfile
    from pathlib import Path

    from converters.deploy_configs import default_model_name
    from converters.triton_repo import write_triton_python_repository
    from sdk.core.manifest import read_manifest, resolve_artifact
    from sdk.serving.env import create_env, default_env_dir, env_problem
    from sdk.serving.server import TritonServer

    env = Path(args.env) if args.env else default_env_dir()
    if args.create_env and env_problem(env) is not None:
        print(f"making the Triton model environment {env} (a venv with numpy<2, the CPU runtimes, nvidia-pytriton's "
              "tritonserver and segedge; a minute or two) ...", flush=True)
        create_env(env)
    folder = resolve_artifact(args.artifact)
    manifest = read_manifest(folder)
    name = args.name or default_model_name(folder)
    scratch = None
    if args.repository:
        repository = Path(args.repository)
    else:
        scratch = tempfile.TemporaryDirectory(prefix="segedge-triton-")
        repository = Path(scratch.name)
    try:
        write_triton_python_repository(folder, repository, model_name=name, max_batch_size=args.max_batch,
                                       instance_count=args.instances, max_queue_delay_us=args.max_queue_delay_us,
                                       kind=args.kind)
        server = TritonServer(repository, env=args.env, host=args.host, http_port=args.port,
                              grpc_port=args.grpc_port, metrics_port=args.metrics_port)
        # Ctrl-C and SIGTERM stop it; SIGINT set explicitly, since a command started in the background of a
        # shell inherits it ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        print(f"starting tritonserver ({server.binary}) on {repository} ...", flush=True)
        server.start()
        try:
            print(f"serving {name}: {manifest.num_classes} classes, {manifest.precision} {manifest.format}, "
                  f"{args.instances} instance(s), dynamic batches up to {args.max_batch} "
                  f"(wait <= {args.max_queue_delay_us} us)")
            print(f"  HTTP     http://{server.http_url}/v2/models/{name}")
            print(f"  gRPC     {server.grpc_url}")
            print(f"  metrics  {server.metrics_url}    log {server.log_path}")
            print(f"client: {client_line(server.grpc_url, name, 'grpc')}")
            print("Ctrl-C stops it.", flush=True)
            code = server.wait()
            print(f"tritonserver exited by itself with {code}: see {server.log_path}")
            return 1
        except KeyboardInterrupt:
            print("stopping tritonserver (it finishes in-flight requests; open client connections can hold it "
                  f"up to {server.stop_timeout_s:.0f} s) ...", flush=True)
            code = server.stop()
            print(f"tritonserver stopped (exit {code})")
            return 0 if code == 0 else 1
        finally:
            server.stop()
    finally:
        if scratch is not None:
            scratch.cleanup()


def add_parser(sub) -> None:
    """Register ``segedge serve``. Imports nothing heavy."""
    p = sub.add_parser("serve", help="serve an artifact on a real Triton Inference Server (HTTP + gRPC) until Ctrl-C")
    p.add_argument("artifact", help="artifact folder (ONNX, OpenVINO IR or TensorRT engine, any head)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (KServe v2; default 8000)")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001)")
    p.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default 8002)")
    p.add_argument("--instances", type=int, default=1, help="model instances (processes) serving in parallel")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch Triton's dynamic batcher forms")
    p.add_argument("--max-queue-delay-us", type=int, default=2000,
                   help="how long a request may wait for a batch to fill (microseconds, default 2000)")
    p.add_argument("--name", help="model name (default: the artifact folder's name)")
    p.add_argument("--kind", choices=["KIND_GPU", "KIND_CPU", "KIND_AUTO"],
                   help="instance kind (default GPU for TensorRT, CPU otherwise)")
    p.add_argument("--repository", help="write the model repository here and keep it (default: a temporary folder)")
    p.add_argument("--env", help="the model's Python environment with tritonserver (default $SEGEDGE_TRITON_ENV or "
                                 "~/.cache/segedge/triton-env; without one, tritonserver on PATH)")
    p.add_argument("--create-env", action="store_true",
                   help="make that environment first if it is missing (pip installs numpy<2, the CPU runtimes, "
                        "nvidia-pytriton and segedge into it)")
    p.set_defaults(func=run)

"""GStreamer's RTSP server serving H.264 mp4 files as cameras; run by Debian's /usr/bin/python3 (python3-gi), never
imported by the project's Python. benchmarks/rtsp_camera.py starts it: see RtspServer there.

    /usr/bin/python3 benchmarks/rtsp_server_main.py --port 8554 [--host 127.0.0.1] [--shared] [--parent-pid PID] \
        A.mp4 ...

serves A.mp4 at rtsp://HOST:PORT/cam0, the next at /cam1, ... paced in real time (the RTP sink syncs to the clock).
Exit status 3 with one line on stderr when gi / GstRtspServer cannot be imported (the Debian packages are missing).
With --parent-pid the server quits when that process is gone, so a crashed test leaves no server behind.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_MISSING = 3
LAUNCH = "( filesrc location={path} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 )"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--shared", action="store_true", help="clients of one mount share one pipeline")
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as exc:
        print(f"cannot import GStreamer's RTSP server through gi: {exc}", file=sys.stderr, flush=True)
        return EXIT_MISSING
    Gst.init(None)
    for plugin in ("coreelements", "isomp4", "videoparsersbad", "rtp"):
        if Gst.Registry.get().find_plugin(plugin) is None:
            print(f"GStreamer plugin {plugin!r} is missing", file=sys.stderr, flush=True)
            return EXIT_MISSING

    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for i, path in enumerate(args.files):
        factory = GstRtspServer.RTSPMediaFactory()
        # GStreamer's launch syntax: a quoted location keeps spaces and '!' in the path literal
        factory.set_launch(LAUNCH.format(path='"' + str(path.resolve()).replace('"', '\\"') + '"'))
        factory.set_shared(args.shared)
        mounts.add_factory(f"/cam{i}", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 1

    loop = GLib.MainLoop()

    def parent_alive() -> bool:
        if os.getppid() != args.parent_pid:
            loop.quit()
            return False
        return True

    if args.parent_pid:
        GLib.timeout_add(250, parent_alive)
    print(f"serving {len(args.files)} mounts on rtsp://{args.host}:{args.port}/cam0..", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

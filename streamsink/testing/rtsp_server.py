"""A real RTSP server on loopback for tests: GStreamer's gst-rtsp-server, run by `/usr/bin/python3`.

GStreamer's Python bindings (`gi`) exist only for the system interpreter, so
this file imports nothing of streamsink's or the venv's; the tests' `RtspServer`
(tests/servers.py) starts it as a child process. Mounts:

    /live       H.264 test pattern, TCP or UDP, as the client asks
    /tcp        TCP (interleaved) only
    /udp        UDP only
    /secure     like /live, behind basic auth (--user, --password)

It prints "ready PORT" once it listens and stops when its stdin closes.

    /usr/bin/python3 rtsp_server.py --port 8554 [--fps 25] [--gop 25] [--user u --password p]
"""

from __future__ import annotations

import argparse
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--gop", type=int, default=25)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--user", default="user")
    parser.add_argument("--password", default="secret")
    args = parser.parse_args()
    Gst.init(None)

    launch = (f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={args.width},height={args.height},"
              f"framerate={args.fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast "
              f"key-int-max={args.gop} bframes=0 ! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 "
              "config-interval=-1 )")
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()

    def factory(protocols=None, *, secure: bool = False) -> GstRtspServer.RTSPMediaFactory:
        made = GstRtspServer.RTSPMediaFactory()
        made.set_launch(launch)
        made.set_shared(True)  # a second client joins the running stream, mid-GOP
        if protocols is not None:
            made.set_protocols(protocols)
        # "access" denied is a 404, "construct" denied a 401 that asks for credentials.
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("anonymous", "media.factory.access", True)
        permissions.add_permission_for_role("anonymous", "media.factory.construct", not secure)
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        made.set_permissions(permissions)
        return made

    mounts.add_factory("/live", factory())
    mounts.add_factory("/tcp", factory(GstRtsp.RTSPLowerTrans.TCP))
    mounts.add_factory("/udp", factory(GstRtsp.RTSPLowerTrans.UDP))
    mounts.add_factory("/secure", factory(secure=True))
    auth = GstRtspServer.RTSPAuth()
    viewer = GstRtspServer.RTSPToken()
    viewer.set_string("media.factory.role", "viewer")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), viewer)
    anonymous = GstRtspServer.RTSPToken()
    anonymous.set_string("media.factory.role", "anonymous")
    auth.set_default_token(anonymous)
    server.set_auth(auth)
    if not server.attach(None):
        print("cannot listen", flush=True)
        sys.exit(1)

    loop = GLib.MainLoop()

    def until_stdin_closes() -> None:
        for _ in sys.stdin:
            pass
        GLib.idle_add(loop.quit)

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    print(f"ready {server.get_bound_port()}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()

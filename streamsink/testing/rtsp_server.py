"""A real RTSP server on loopback for tests: GStreamer's gst-rtsp-server, run by `/usr/bin/python3`.

GStreamer's Python bindings (`gi`) exist only for the system interpreter, so
this file imports nothing of streamsink's or the venv's; `RtspServer` in
streamsink.testing.streams starts it as a child process. Mounts:

    /live       H.264 test pattern, TCP or UDP, as the client asks
    /tcp        TCP (interleaved) only
    /udp        UDP only
    /secure     like /live, behind basic auth (--user, --password)

stdin takes "stall" (the pipelines stop sending but every connection stays
open) and "resume"; the server prints "ready PORT" once it listens.

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
              f"framerate={args.fps}/1 ! valve name=valve drop=false ! x264enc tune=zerolatency speed-preset=ultrafast "
              f"key-int-max={args.gop} bframes=0 ! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 "
              "config-interval=-1 )")
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    valves: list = []

    def factory(protocols=None, role: str | None = None) -> GstRtspServer.RTSPMediaFactory:
        made = GstRtspServer.RTSPMediaFactory()
        made.set_launch(launch)
        made.set_shared(True)  # a second client joins the running stream, mid-GOP
        if protocols is not None:
            made.set_protocols(protocols)
        if role is not None:
            permissions = GstRtspServer.RTSPPermissions()
            permissions.add_permission_for_role(role, "media.factory.access", True)
            permissions.add_permission_for_role(role, "media.factory.construct", True)
            made.set_permissions(permissions)

        def configured(_factory, media) -> None:
            valves.append(media.get_element().get_by_name("valve"))

        made.connect("media-configure", configured)
        return made

    mounts.add_factory("/live", factory())
    mounts.add_factory("/tcp", factory(GstRtsp.RTSPLowerTrans.TCP))
    mounts.add_factory("/udp", factory(GstRtsp.RTSPLowerTrans.UDP))
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "viewer")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
    mounts.add_factory("/secure", factory(role="viewer"))
    server_id = server.attach(None)
    if not server_id:
        print("cannot listen", flush=True)
        sys.exit(1)
    secure = GstRtspServer.RTSPServer.get_auth(server)  # noqa: F841 (kept for clarity: auth is per server)
    server.set_auth(auth)
    # A mount without a role requirement stays open to anyone: only /secure asks for the token's role.
    for path in ("/live", "/tcp", "/udp"):
        open_permissions = GstRtspServer.RTSPPermissions()
        open_permissions.add_permission_for_role("anonymous", "media.factory.access", True)
        open_permissions.add_permission_for_role("anonymous", "media.factory.construct", True)
    default = GstRtspServer.RTSPToken()
    default.set_string("media.factory.role", "anonymous")
    auth.set_default_token(default)
    for path in ("/live", "/tcp", "/udp"):
        made = mounts.match(path)[0]
        permissions = GstRtspServer.RTSPPermissions()
        for role in ("anonymous", "viewer"):
            permissions.add_permission_for_role(role, "media.factory.access", True)
            permissions.add_permission_for_role(role, "media.factory.construct", True)
        made.set_permissions(permissions)

    loop = GLib.MainLoop()

    def commands() -> None:
        for line in sys.stdin:
            word = line.strip()
            if word in ("stall", "resume"):
                for valve in valves:
                    GLib.idle_add(valve.set_property, "drop", word == "stall")
        GLib.idle_add(loop.quit)

    threading.Thread(target=commands, daemon=True).start()
    print(f"ready {server.get_bound_port()}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()

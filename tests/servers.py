"""Real servers on loopback for the tests: Mosquitto (MQTT) and GStreamer's RTSP server.

Both are Debian packages (`.ci/run` installs them); a test that needs one
skips, naming the package, where it is missing. Each is a child process that
the test stops, also when it fails.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import streamsink.testing

RTSP_SCRIPT = Path(streamsink.testing.__file__).parent / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def mosquitto() -> str:
    path = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if path is None:
        pytest.skip("needs the Mosquitto broker: apt-get install mosquitto")
    pytest.importorskip("paho.mqtt.client", reason="needs paho-mqtt (a streamsink dependency)")
    return path


class Broker:
    """Mosquitto on 127.0.0.1:`port`, persistent (a restart keeps sessions and retained messages)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.binary = mosquitto()
        self.port = port or free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                               f"persistence_location {folder}/\nautosave_interval 1\n")
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        self._process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)  # saves its persistence file
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Subscriber:
    """A paho client that keeps every message of `topic` it gets, with a persistent QoS 1 session."""

    def __init__(self, port: int, topic: str, client_id: str = "streamsink-test-subscriber") -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, bool]] = []
        self.connected = threading.Event()
        self._lock = threading.Lock()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        client.reconnect_delay_set(min_delay=0.2, max_delay=1)

        def connected(client, userdata, flags, reason, properties) -> None:
            client.subscribe(topic, qos=1)
            self.connected.set()

        def message(client, userdata, msg) -> None:
            with self._lock:
                self.messages.append((msg.topic, msg.payload.decode(), bool(msg.retain)))

        client.on_connect = connected
        client.on_message = message
        self._client = client
        self._port = port

    def __enter__(self) -> Subscriber:
        self._client.connect_async("127.0.0.1", self._port)
        self._client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError("the subscriber could not connect")
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def taken(self) -> list[tuple[str, str, bool]]:
        with self._lock:
            return list(self.messages)


def rtsp_available() -> None:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip("needs /usr/bin/python3 with GStreamer's bindings: apt-get install python3-gst-1.0")
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
                            "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('rtph264pay')"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("needs GStreamer's RTSP server: apt-get install gir1.2-gst-rtsp-server-1.0 python3-gst-1.0 "
                    "gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly")


class RtspServer:
    """GStreamer's RTSP server (streamsink/testing/rtsp_server.py) under the system Python, on 127.0.0.1.

    `freeze()` stops the server process (SIGSTOP): every connection stays open and
    nothing at all is sent, as a hung camera does; `thaw()` lets it go on.
    `stop()` and `start()` take it away and bring it back on the same port.
    """

    def __init__(self, port: int | None = None, **options: object) -> None:
        rtsp_available()
        self.port = port or free_port()
        self.options = options
        self._process: subprocess.Popen | None = None

    def url(self, mount: str = "/live", credentials: str = "") -> str:
        return f"rtsp://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}{mount}"

    def start(self) -> RtspServer:
        args = [SYSTEM_PYTHON, str(RTSP_SCRIPT), "--port", str(self.port)]
        for name, value in self.options.items():
            args += [f"--{name}", str(value)]
        self._process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True)
        line = self._process.stdout.readline()
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"the RTSP server did not start: {line!r}")
        return self

    def freeze(self) -> None:
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

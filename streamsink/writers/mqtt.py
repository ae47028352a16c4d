"""Presence over MQTT, the way home-automation tools take events (Frigate's model), with paho-mqtt.

    prefix/<source>/<class>   "present" | "absent", retained: a new subscriber knows the state at once
    prefix/events             one JSON object per state change (`StateChanges`, the page's and the
                              recipes' events too), with the wall-clock time
    prefix/status             "online", retained; the broker's last will sets "offline"

Everything is QoS 1. paho's own thread talks to the broker and reconnects
with backoff; publishing only queues, so a slow or absent broker never stalls
detection, and what was queued while it was away is sent when it is back.
A broker that is down at the start is a one-line warning and a retry.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from streamsink.events import StateChanges

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "streamsink"
CLOSE_TIMEOUT = 5.0  # seconds a clean stop waits for queued messages to reach the broker


@dataclass(frozen=True)
class MqttTarget:
    """Where to publish: a broker and the topic prefix, from `mqtt://[user:pass@]host[:port]/prefix`."""

    host: str
    port: int
    prefix: str
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @property
    def shown(self) -> str:
        """The address without its password, for logs and messages."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}/{self.prefix}"


def parse_mqtt_url(url: str) -> MqttTarget:
    """`mqtt://[user:pass@]host[:port]/prefix` (mqtts:// for TLS); ValueError, without the password, otherwise."""
    usage = "--mqtt takes mqtt://[user:pass@]host[:port]/prefix"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"{usage}, got a malformed address") from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        shown = url.split("@")[-1] if "@" in url else url
        raise ValueError(f"{usage}, got {shown!r}")
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    if any(c in prefix for c in "+#\0"):
        raise ValueError(f"{usage}: the prefix may not hold + or #, got {prefix!r}")
    return MqttTarget(parts.hostname, port or (8883 if parts.scheme == "mqtts" else 1883), prefix,
                      unquote(parts.username) if parts.username else None,
                      unquote(parts.password) if parts.password else None, parts.scheme == "mqtts")


def topic_part(name: str) -> str:
    """A source or class name as one topic level: no level separators or wildcards."""
    return "".join("_" if c in "/+#\0" else c for c in str(name)) or "_"


class MqttPublisher:
    """Publishes each source's per-class states and their changes; an annotate-loop observer (`on_result`).

    Use as a context manager: entering starts the connection in the
    background (it never raises for an absent broker), leaving sends
    "offline", waits up to CLOSE_TIMEOUT s for queued messages and disconnects.
    """

    def __init__(self, target: MqttTarget | str, *, client_id: str | None = None,
                 clock: Any = time.time) -> None:
        self.target = parse_mqtt_url(target) if isinstance(target, str) else target
        self._client_id = client_id or f"streamsink-{threading.get_ident():x}-{int(time.time() * 1000) % 10**8}"
        self._clock = clock
        self._changes = StateChanges()
        self._states: dict[tuple[str, str], str] = {}  # what is retained, to send again after a reconnect
        self._lock = threading.Lock()
        self._client: Any = None
        self._unacked: set[int] = set()  # message ids the broker has not acknowledged yet (paho resends them)
        self._away = False  # a warning was given for the current outage

    def topic(self, *levels: str) -> str:
        return "/".join([self.target.prefix, *(topic_part(level) for level in levels)])

    def __enter__(self) -> MqttPublisher:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self._client_id, protocol=mqtt.MQTTv311)
        if self.target.username:
            client.username_pw_set(self.target.username, self.target.password)
        if self.target.tls:
            client.tls_set()
        client.will_set(self.topic("status"), "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(100_000)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_connect_fail = self._connect_failed
        client.on_publish = self._acknowledged
        self._client = client
        try:
            client.connect_async(self.target.host, self.target.port, keepalive=30)
        except (OSError, ValueError) as error:  # a name that does not resolve; paho retries on its own
            self._warn(str(error))
        client.loop_start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        self._track(client.publish(self.topic("status"), "offline", qos=1, retain=True))
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while self._unacked and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._unacked:
            logger.warning("MQTT: %d message(s) not delivered to %s before the run ended", len(self._unacked),
                           self.target.shown)
        client.disconnect()
        client.loop_stop()

    def _track(self, info: Any) -> None:
        with self._lock:
            self._unacked.add(info.mid)

    # paho's thread -------------------------------------------------------------------------------

    def _connected(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._warn(str(reason))
            return
        if self._away:
            logger.warning("MQTT: connected to %s again", self.target.shown)
        self._away = False
        client.publish(self.topic("status"), "online", qos=1, retain=True)
        with self._lock:
            states = dict(self._states)
        for (source, label), state in states.items():  # a broker without persistence forgot them
            client.publish(self.topic(source, label), state, qos=1, retain=True)

    def _disconnected(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self._client is not None and not self._away:
            self._warn(f"disconnected ({reason})")

    def _acknowledged(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._lock:
            self._unacked.discard(mid)

    def _connect_failed(self, client: Any, userdata: Any) -> None:
        self._warn("cannot connect")

    def _warn(self, reason: str) -> None:
        if not self._away:
            self._away = True
            logger.warning("MQTT broker %s: %s; retrying in the background", self.target.shown, reason)

    # the run's thread -----------------------------------------------------------------------------

    def on_result(self, result: Any, fps: float = 0.0, latency_ms: float | None = None) -> bool:
        """Publish the states of a source's first frame (and of classes new to its prompt) and every change."""
        source = result.frame.source
        fresh = [(label, str(state)) for label, state in result.states.items() if (source, label) not in self._states]
        for event in self._changes.update(result):
            event = {**event, "time": round(self._clock(), 3)}
            self._publish(self.topic("events"), json.dumps(event), retain=False)
            self._retain(source, event["class"], event["state"])
        for label, state in fresh:
            self._retain(source, label, state)
        return True

    def _retain(self, source: str, label: str, state: str) -> None:
        with self._lock:
            self._states[(source, label)] = state
        self._publish(self.topic(source, label), state, retain=True)

    def _publish(self, topic: str, payload: str, *, retain: bool) -> None:
        client = self._client
        if client is None:
            return
        # Queued even while the broker is away (paho sends it on reconnect); never raises into the run.
        self._track(client.publish(topic, payload, qos=1, retain=retain))

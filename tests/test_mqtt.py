"""Presence over MQTT against a real Mosquitto broker on loopback: retained states, events, restarts, absence."""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import pytest

from servers import Broker, Subscriber, free_port
from streamsink.cli import main
from streamsink.testing.streams import LiveStream, WatchRun
from streamsink.writers.mqtt import parse_mqtt_url, topic_part

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "samples" / "models" / "shapes-gdino"
SHORT_CLIP = ROOT / "samples" / "clips" / "shapes_short.mp4"
DEMO_CLIP = ROOT / "samples" / "clips" / "shapes_demo.mp4"
PROMPT = "circle,square,triangle,star,dog"


def changes_in(jsonl: Path) -> list[tuple[str, str, str, int]]:
    """(source, class, state, frame) of every state change in a JSONL, in order: what the events must be."""
    previous: dict[str, dict] = {}
    changes = []
    for line in jsonl.read_text().splitlines():
        record = json.loads(line)
        source = record.get("source", "")
        before = previous.get(source)
        if before is not None:
            changes += [(source, label, state, record["frame"]) for label, state in record["states"].items()
                        if label in before and before[label] != state]
        previous[source] = record["states"]
    return changes


def events_of(messages: list[tuple[str, str, bool]], prefix: str) -> list[tuple[str, str, str, int]]:
    seen, events = set(), []
    for topic, payload, _ in messages:
        if topic == f"{prefix}/events" and payload not in seen:  # QoS 1 is at least once: a resend is the same text
            seen.add(payload)
            event = json.loads(payload)
            events.append((event["source"], event["class"], event["state"], event["frame"]))
    return events


def _wait(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_process_publishes_retained_states_and_one_event_per_change(tmp_path):
    jsonl = tmp_path / "clip.jsonl"
    with Broker(tmp_path / "broker") as broker, Subscriber(broker.port, "yard/#") as watcher:
        code = main(["process", str(SHORT_CLIP), "-p", PROMPT, "-m", str(DEMO_MODEL), "-o", str(tmp_path / "clip.mp4"),
                     "--jsonl", str(jsonl), "--mqtt", f"{broker.url}/yard"])
        assert code == 0
        expected = changes_in(jsonl)
        assert expected, "the clip has state changes to publish"
        _wait(lambda: len(events_of(watcher.taken(), "yard")) >= len(expected))
        assert events_of(watcher.taken(), "yard") == expected, "one event per JSONL state change, in order"
        one = json.loads(next(p for t, p, _ in watcher.taken() if t == "yard/events"))
        assert set(one) >= {"source", "class", "state", "pts", "frame", "time"} and abs(one["time"] - time.time()) < 600
        if one["state"] == "present":
            assert 0 < one["score"] <= 1 and len(one["box"]) == 4

        with Subscriber(broker.port, "yard/#", client_id="late") as late:  # retained: a newcomer knows at once
            _wait(lambda: len([m for m in late.taken() if m[2]]) >= 6)
            retained = {t: p for t, p, kept in late.taken() if kept}
    last = json.loads(jsonl.read_text().splitlines()[-1])
    name = topic_part(SHORT_CLIP.stem)
    assert {label: retained[f"yard/{name}/{label}"] for label in PROMPT.split(",")} == last["states"]
    assert retained["yard/status"] == "offline", "a clean stop says offline"


def test_a_broker_restart_mid_run_loses_nothing(tmp_path):
    """QoS 1 with a persistent broker: events published while it restarts arrive once it is back."""
    with av.open(str(DEMO_CLIP)) as container:
        frames = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(150), container.decode(video=0))]
    jsonl = tmp_path / "live.jsonl"
    broker = Broker(tmp_path / "broker").start()
    try:
        with Subscriber(broker.port, "cams/#") as watcher, LiveStream(frames, 25) as stream:
            with WatchRun([stream.url, "-p", PROMPT, "-m", DEMO_MODEL, "--headless", "--jsonl", jsonl,
                           "--mqtt", f"{broker.url}/cams"], log=str(tmp_path / "watch.log")) as run:
                time.sleep(5)
                broker.stop()
                time.sleep(3)
                broker.start()
                time.sleep(6)
            assert run.exit_code == 130, run.stderr[-2000:]
            expected = changes_in(jsonl)
            assert len(expected) >= 5
            _wait(lambda: len(events_of(watcher.taken(), "cams")) >= len(expected))
            assert events_of(watcher.taken(), "cams") == expected
        assert "MQTT broker" in run.stderr and "connected to" in run.stderr and "again" in run.stderr
    finally:
        broker.stop()


def test_a_broker_down_at_the_start_is_a_warning_and_a_retry(tmp_path, tiny_checkpoint):
    port = free_port()
    frames = [__import__("numpy").full((120, 160, 3), i * 5 % 255, "uint8") for i in range(25)]
    with LiveStream(frames, 25) as stream:
        with WatchRun([stream.url, "-p", "dog,cat", "-m", tiny_checkpoint, "--headless",
                       "--mqtt", f"mqtt://127.0.0.1:{port}/later"], log=str(tmp_path / "watch.log")) as run:
            time.sleep(3)
            with Broker(tmp_path / "broker", port=port), Subscriber(port, "later/#") as watcher:
                _wait(lambda: {"later/status", "later/127.0.0.1_live/dog"} <= {t for t, _, _ in watcher.taken()}, timeout=40)
                run.stop()
        warnings = [line for line in run.stderr.splitlines() if "MQTT broker" in line]
        assert len(warnings) == 1 and "retrying in the background" in warnings[0], run.stderr[-2000:]
        assert run.exit_code == 130


@pytest.mark.parametrize("url", ["http://host/x", "mqtt://", "mqtt://host:99999/x", "mqtt://u:pa55@/x",
                                 "mqtt://host/a/+/b"])
def test_a_malformed_mqtt_url_is_exit_2(url, capsys):
    assert main(["watch", "camera0", "-p", "dog", "--headless", "--mqtt", url]) == 2
    err = capsys.readouterr().err
    assert "--mqtt takes mqtt://" in err and "pa55" not in err and len(err.strip().splitlines()) == 1


def test_parse_mqtt_url():
    target = parse_mqtt_url("mqtt://me:p%40ss@broker.lan:1884/home/cams")
    assert (target.host, target.port, target.prefix, target.username, target.password) == \
        ("broker.lan", 1884, "home/cams", "me", "p@ss")
    assert parse_mqtt_url("mqtt://broker").prefix == "streamsink" and parse_mqtt_url("mqtts://b").port == 8883
    assert "p@ss" not in target.shown and topic_part("a/b+c#") == "a_b_c_"

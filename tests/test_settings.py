"""One settings object: one validate(), and every option of `process`/`watch` reaching run() and `process --ray`."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from streamsink.cli.parser import OUTPUT_OPTIONS, build_parser, settings_from_args
from streamsink.settings import RunSettings, SettingsError

BAD = {
    "threshold": ({"threshold": 1.5}, "threshold must be in [0, 1], got 1.5"),
    "batch size": ({"batch_size": 0}, "batch size must be >= 1, got 0"),
    "max latency": ({"max_latency": -1.0}, "max latency must be >= 0 seconds, got -1.0"),
    "sinks": ({"sinks": -1}, "sinks must be >= 0, got -1"),
    "sinks type": ({"sinks": 1.5}, "sinks must be an int, got 1.5"),
    "sink init": ({"sink_init": "zeros"}, "sink_init must be one of mean, random, brackets, got 'zeros'"),
    "device": ({"device": "tpu"}, "device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    "dtype": ({"dtype": "int8"}, "dtype must be one of auto, fp32, fp16, bf16, got 'int8'"),
    "threads": ({"threads": -1}, "threads must be >= 0, got -1"),
    "buffer": ({"buffer": 0}, "buffer must be >= 1, got 0"),
    "retries": ({"retries": -2}, "retries must be >= 0, got -2"),
    "smoother option": ({"smoother_options": {"present_after": 0}}, "present_after"),
    "unknown smoother option": ({"smoother_options": {"no_such_option": 1}}, "smoother_options has an unknown option"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_validate_gives_one_line(case):
    changes, message = BAD[case]
    with pytest.raises(ValueError) as raised:
        RunSettings(**changes).validate()
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_defaults_are_valid_and_frozen():
    settings = RunSettings().validate()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.threshold = 0.5  # type: ignore[misc]
    assert RunSettings(dtype=None).dtype == "auto"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def _non_default(action: argparse.Action) -> list[str]:
    """Command-line words that give the option a value other than its default."""
    flag = action.option_strings[-1]
    if action.nargs == 0:
        return [flag]
    if action.choices:
        return [flag, next(c for c in action.choices if c != action.default)]
    if action.type is int:
        return [flag, str((action.default or 0) + 1)]
    if action.type is float:
        return [flag, str((action.default or 0.0) + 0.25)]
    return [flag, {"model": "some/other-model", "device": "cpu", "profile": "none",
                   "class_thresholds": "dog=0.45"}[action.dest]]


FIELDS = set(RunSettings.field_names())
COMMANDS = ("process", "watch")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_a_setting_or_an_output_option(command):
    for action in _subcommands()[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.dest in FIELDS or action.dest in OUTPUT_OPTIONS, (
            f"{command} {action.option_strings or action.dest}: neither a RunSettings field nor in OUTPUT_OPTIONS"
        )


def _setting_options(command: str) -> list[argparse.Action]:
    actions = [a for a in _subcommands()[command]._actions if a.dest in FIELDS or a.dest == "no_smooth"]
    assert len(actions) >= 10, "the walk found the options"
    return actions


@pytest.mark.parametrize("command", COMMANDS)
def test_every_setting_option_changes_its_field(command):
    source = ["clip.mp4"] if command == "process" else ["camera0"]
    plain = settings_from_args(build_parser().parse_args([command, *source, "-p", "dog"]))
    assert plain == RunSettings()
    for action in _setting_options(command):
        args = build_parser().parse_args([command, *source, "-p", "dog", *_non_default(action)])
        changed = {f.name for f in dataclasses.fields(RunSettings)
                   if getattr(settings_from_args(args), f.name) != getattr(plain, f.name)}
        assert changed == {"smooth" if action.dest == "no_smooth" else action.dest}, action.option_strings


def _all_changed(command: str, source: list[str]) -> tuple[list[str], RunSettings]:
    words = [command, *source, "-p", "dog"]
    for action in _setting_options(command):
        words += _non_default(action)
    settings = settings_from_args(build_parser().parse_args(words))
    assert all(getattr(settings, f) != getattr(RunSettings(), f) for f in
               {a.dest for a in _setting_options(command)} - {"no_smooth"} | {"smooth"})
    return words, settings


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_reaches_run(command, sample_clip, monkeypatch):
    import streamsink
    import streamsink.api

    _, settings = _all_changed(command, [str(sample_clip)])
    seen = []
    monkeypatch.setattr(streamsink.api, "detect_sources", lambda frames, prompts, s, **kw: iter(seen.append(s) or ()))
    as_keywords = {f.name: getattr(settings, f.name) for f in dataclasses.fields(RunSettings)}
    assert list(streamsink.run(str(sample_clip), "dog", **as_keywords)) == []
    assert list(streamsink.run(str(sample_clip), "dog", settings)) == []
    assert seen == [settings, settings]


def test_every_process_option_reaches_process_ray(sample_clip, tmp_path, monkeypatch, capsys):
    import streamsink.archive
    from streamsink.archive import ArchiveReport
    from streamsink.cli import main

    words, settings = _all_changed("process", [str(sample_clip)])
    seen = {}

    def fake_archive(inputs, outdir, **kwargs):
        seen.update(kwargs)
        return ArchiveReport((), str(outdir), ("dog",))

    monkeypatch.setattr(streamsink.archive, "process_archive", fake_archive)
    assert main([*words, "--ray", "-o", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert seen["settings"] == settings


def test_process_archive_hands_its_settings_to_the_replicas(sample_clip, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    from streamsink.archive import cluster, driver, process_archive

    settings = RunSettings(model="m", device="cpu", sinks=3, threshold=0.4, batch_size=2, smooth=True,
                           smoother_options={"present_after": 2}, dtype="fp16", threads=1, compile=True)
    reached = []

    class Reached(Exception):
        pass

    def go(self, ray, todo, replica, workers):
        reached.append(replica)
        raise Reached

    monkeypatch.setattr(cluster, "connect", lambda ray, address: False)
    monkeypatch.setattr(driver.Scheduler, "go", go)
    with pytest.raises(Reached):
        process_archive([sample_clip], tmp_path / "out", prompt="dog", settings=settings, raw=True)
    assert reached[0].settings == settings and reached[0].raw and reached[0].classes == ("dog",)


def test_cli_names_its_own_flag_in_settings_errors(sample_clip, capsys):
    from streamsink.cli import main

    assert main(["watch", "camera0", "-p", "dog", "--buffer", "0"]) == 2
    assert capsys.readouterr().err.strip() == "streamsink: error: --buffer must be >= 1, got 0"
    assert main(["process", str(sample_clip), "-p", "dog", "--batch-size", "0"]) == 2
    assert capsys.readouterr().err.strip() == "streamsink: error: batch size must be >= 1, got 0"


def test_settings_error_is_a_value_error_and_a_streamsink_error():
    from streamsink.errors import StreamsinkError

    with pytest.raises(SettingsError) as raised:
        RunSettings(sinks=-1).validate()
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, StreamsinkError)
    assert raised.value.name == "sinks"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_reaches_the_run_path_from_the_command_line(command, sample_clip, monkeypatch, tmp_path):
    import streamsink.api
    from streamsink.cli import main

    words, settings = _all_changed(command, [str(sample_clip)])
    seen = []
    monkeypatch.setattr(streamsink.api, "load_detector", lambda s, **kw: seen.append(("load", s)) or object())
    monkeypatch.setattr(streamsink.api, "detect_sources",
                        lambda frames, prompts, s, **kw: iter(seen.append(("run", s)) or ()))
    extra = ["-o", str(tmp_path / "out.mp4")] + (["--headless"] if command == "watch" else [])
    assert main([*words, *extra]) == 0
    assert seen == [("load", settings), ("run", settings)]


def test_a_setting_without_a_flag_keeps_its_own_name_on_the_command_line():
    from streamsink.cli.parser import flag_message

    with pytest.raises(SettingsError) as raised:
        RunSettings(smoother_options={"no_such_option": 1}).validate()
    assert flag_message(raised.value).startswith("smoother_options has an unknown option")
    with pytest.raises(SettingsError) as raised:
        RunSettings(retries=-1).validate()
    assert flag_message(raised.value) == "--retries must be >= 0, got -1"


def test_the_detector_keeps_what_the_temporal_stage_reads():
    from streamsink.api import detection_floor

    classes = ("dog", "cat")
    # Smoothing: evidence down to `margin` under each threshold, weak duplicates down to `support_floor`.
    smoothed = RunSettings(threshold=0.4, class_thresholds={"cat": 0.12})
    assert detection_floor(smoothed, classes) == pytest.approx((0.1, 0.07))
    no_backing = RunSettings(threshold=0.4, smoother_options={"support_floor": 1.0})
    assert detection_floor(no_backing, classes) == pytest.approx((0.35, 0.35))
    # A stage that reads no backing (no discount, no head start) needs no weak queries.
    unread = RunSettings(threshold=0.4, smoother_options={"unbacked": 1.0, "head_start": 0.0})
    assert detection_floor(unread, classes) == pytest.approx((0.35, 0.35))
    # Without it, what is shown is what the detector keeps.
    assert detection_floor(RunSettings(threshold=0.4, smooth=False), classes) == pytest.approx((0.4, 0.4))

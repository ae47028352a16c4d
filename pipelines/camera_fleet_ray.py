"""A camera fleet on Ray: live sources spread over actors, events collected in one place.

    pip install 'streamsink[ray]'
    python pipelines/camera_fleet_ray.py rtsp://cam1/s rtsp://cam2/s ... --prompt "person,car" --per-worker 8
    python pipelines/camera_fleet_ray.py cams.txt --prompt person --address ray://head:10001

Each worker actor loads one detector and runs streamsink's multi-stream engine
over up to --per-worker sources (their frames share forward passes; each has
its own smoother, drop policy and reconnects). Workers send presence events
(a class turning present or absent on a camera) to one collector actor; this
driver prints them as JSON lines as they arrive. A worker asks Ray for a GPU
when the cluster has one, otherwise for --cpus-per-worker CPUs. A text file
argument lists one source per line. Without --address a local Ray instance
is started. Uses only streamsink's public API.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import streamsink


def fleet_sources(specs: list[str]) -> list[str]:
    """The sources named on the command line; a .txt file lists more, one per line (# starts a comment)."""
    sources = []
    for spec in specs:
        if spec.endswith(".txt") and Path(spec).is_file():
            lines = (line.split("#", 1)[0].strip() for line in Path(spec).read_text().splitlines())
            sources += [line for line in lines if line]
        else:
            sources.append(spec)
    return sources


def run_fleet(sources: list[str], prompt: str, model: str, *, per_worker: int = 8, cpus_per_worker: float = 1.0,
              address: str | None = None, seconds: float | None = None, on_event=print) -> dict[str, dict]:
    """Spread `sources` over Ray workers and call `on_event(event)` for every presence event, centrally.

    Returns per source: frames seen and its last states (sources that never
    delivered a frame are missing; their failure is logged by the worker).
    Events carry the worker's number. Stops when every source has ended,
    after `seconds` (checked as frames arrive), or on Ctrl-C (workers are stopped).
    """
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address)  # workers' warnings (a source that failed, say) reach this terminal

    @ray.remote
    class Collector:
        """Events of every worker, drained by the driver."""

        def __init__(self) -> None:
            self.events: list[dict] = []

        def add(self, events: list[dict]) -> None:
            self.events.extend(events)

        def take(self) -> list[dict]:
            events, self.events = self.events, []
            return events

    @ray.remote
    class FleetWorker:
        """One detector, several live sources, presence events to the collector."""

        def __init__(self, number: int, group: list[str], collector, threads: int | None) -> None:
            self.number, self.group, self.collector, self.threads = number, group, collector, threads

        def run(self) -> dict[str, dict]:
            seen: dict[str, dict] = {}
            deadline = None if seconds is None else time.monotonic() + seconds

            def tracked(results):
                for result in results:
                    entry = seen.setdefault(result.frame.source, {"frames": 0})
                    entry["frames"] += 1
                    entry["states"] = result.states
                    yield result
                    if deadline is not None and time.monotonic() > deadline:
                        return

            results = streamsink.run(self.group, prompt, model=model, threads=self.threads)
            for event in streamsink.state_changes(tracked(results)):
                self.collector.add.remote([{**event, "worker": self.number}])
            return seen

    groups = [sources[i:i + per_worker] for i in range(0, len(sources), per_worker)]
    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus:  # more workers than GPUs share them; asking for a whole one each would leave some unstarted
        resources, threads = {"num_gpus": min(1.0, int(gpus / len(groups) * 1000) / 1000)}, None
    else:  # torch in each worker uses the cores Ray gave it, not every core of the node
        resources, threads = {"num_cpus": cpus_per_worker}, max(1, int(cpus_per_worker))
    collector = Collector.remote()
    workers = [FleetWorker.options(**resources).remote(n, group, collector, threads) for n, group in enumerate(groups)]
    running = [worker.run.remote() for worker in workers]
    summary: dict[str, dict] = {}
    try:
        pending = list(running)
        while pending:
            done, pending = ray.wait(pending, timeout=0.5)
            for event in ray.get(collector.take.remote()):
                on_event(event)
            for finished in done:
                for name, entry in ray.get(finished).items():
                    # names are unique within a worker; two workers may each have a "camera0"
                    summary[name if name not in summary else f"{name}@worker{running.index(finished)}"] = entry
        for event in ray.get(collector.take.remote()):
            on_event(event)
    finally:
        for worker in workers:
            ray.kill(worker)
        if started_here:
            ray.shutdown()
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sources", nargs="+", help="cameras, stream URLs, files, or .txt files listing them")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--model", default=streamsink.DEFAULT_MODEL)
    parser.add_argument("--per-worker", type=int, default=8, help="sources per worker (one detector each)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs a worker asks for when there is no GPU")
    parser.add_argument("--address", help="Ray cluster address (default: start a local instance)")
    parser.add_argument("--seconds", type=float, help="stop after this long")
    args = parser.parse_args(argv)
    if args.per_worker < 1:
        print("camera_fleet_ray: error: --per-worker must be >= 1", file=sys.stderr)
        return 2
    try:
        import ray  # noqa: F401
    except ImportError:
        print("camera_fleet_ray: error: needs Ray: pip install 'streamsink[ray]'", file=sys.stderr)
        return 2
    try:
        summary = run_fleet(fleet_sources(args.sources), args.prompt, args.model, per_worker=args.per_worker,
                            cpus_per_worker=args.cpus_per_worker, address=args.address, seconds=args.seconds,
                            on_event=lambda event: print(json.dumps(event), flush=True))
    except (streamsink.StreamsinkError, ValueError) as error:
        print(f"camera_fleet_ray: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    for name, entry in sorted(summary.items()):
        print(f"{name}: {entry['frames']} frames, last states {entry['states']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Live alerting: print (or POST) a JSON event whenever a prompted class turns present or absent.

    python pipelines/live_alerts.py camera0 --prompt "dog,tractor"
    python pipelines/live_alerts.py rtsp://cam/stream --prompt person --post http://alerts.local/hook
    python pipelines/live_alerts.py camera0 camera1 rtsp://gate/stream --prompt person   # one detector for all

Events come from the temporal smoother's states, so one flickering false
positive never raises an alert. Uses only streamsink's public API.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request

import streamsink


def post(url: str, event: dict, timeout: float = 5.0) -> None:
    request = urllib.request.Request(url, data=json.dumps(event).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--model", default=streamsink.DEFAULT_MODEL)
    parser.add_argument("--post", metavar="URL", help="POST each event as JSON to this URL as well")
    args = parser.parse_args(argv)
    try:
        sources = args.sources[0] if len(args.sources) == 1 else args.sources
        for event in streamsink.state_changes(streamsink.run(sources, args.prompt, model=args.model)):
            print(json.dumps(event), flush=True)
            if args.post:
                try:
                    post(args.post, event)
                except OSError as error:
                    print(f"live_alerts: could not POST to {args.post}: {error}", file=sys.stderr)
    except (streamsink.StreamsinkError, ValueError) as error:
        print(f"live_alerts: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

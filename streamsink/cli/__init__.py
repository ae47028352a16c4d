"""The `streamsink` command: `process` for recorded footage, `watch` for live sources.

Both are thin layers over the run path and the annotate loop. The package is
split by job: `parser` (the words, and how they become one `RunSettings`),
`console` (progress, live status, summaries), `commands` and `live` (the page and MQTT). Heavy imports
(torch, transformers, PyAV, OpenCV) happen inside the subcommands so
`streamsink --help` is instant.
Errors are one plain line on stderr; exit codes: 0 done, 1 unexpected failure,
2 bad usage or bad input, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from streamsink.cli.parser import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    build_parser,
    flag_message,
)
from streamsink.errors import StreamsinkError
from streamsink.settings import SettingsError

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        from streamsink.cli.commands import COMMANDS
        from streamsink.cli.console import show_log

        args = build_parser().parse_args(argv)
        show_log()
        return COMMANDS[args.command](args)
    except UsageError as error:
        return _fail(str(error), EXIT_USAGE)
    except SettingsError as error:
        return _fail(flag_message(error), EXIT_USAGE)
    except (StreamsinkError, ValueError) as error:
        return _fail(str(error), EXIT_USAGE)
    except KeyboardInterrupt:
        print("streamsink: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exit_:  # --help and --version
        return int(exit_.code or 0)
    except Exception as error:
        if os.environ.get("STREAMSINK_DEBUG"):
            raise
        return _fail(f"unexpected {type(error).__name__}: {error} (set STREAMSINK_DEBUG=1 for a traceback)", EXIT_FAILURE)


def _fail(message: str, code: int) -> int:
    message = " ".join(str(message).split()) or "failed"
    print(f"streamsink: error: {message}", file=sys.stderr)
    return code



"""`python -m streamsink` is the same as the `streamsink` command."""

from streamsink.cli import main

raise SystemExit(main())

"""`python -m connector` is the same as the `eos-connector` command."""

from connector.cli import main

raise SystemExit(main())

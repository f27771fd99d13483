"""`python -m rules_engine` is the same as the `rules-engine` command."""

from rules_engine.cli import main

raise SystemExit(main())

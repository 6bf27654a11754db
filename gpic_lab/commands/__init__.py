"""CLI subcommands: one module per verb, each with `register(subparsers)` setting `func=run`."""

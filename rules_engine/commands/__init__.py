"""One module per `rules-engine` subcommand; each defines `register(subparsers)`."""

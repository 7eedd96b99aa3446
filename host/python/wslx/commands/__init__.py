"""One module per `wslx` subcommand; see wslx.cli."""

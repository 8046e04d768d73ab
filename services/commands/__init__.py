"""Subcommands of the `raceday` CLI, one module each."""

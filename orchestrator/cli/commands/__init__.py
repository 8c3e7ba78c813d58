"""One module per CLI subcommand beyond run/plan; cli.py registers each `command` here."""

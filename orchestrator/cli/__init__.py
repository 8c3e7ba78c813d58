"""The command line: click commands that parse, build a config and call the core; printing lives here."""

"""The ``wmproof`` command line: a thin typer layer over the library (see ``wmproof_cli.main``)."""

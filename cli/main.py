"""The ``wmproof`` console script."""

from __future__ import annotations

import sys

import typer

from wmproof import __version__
from wmproof.errors import ExitCode

from . import attack_cmd, chain_cmd, export_cmd, identity_cmd, proof_cmd, serve_cmd
from .demo_cmd import demo_command
from .keygen_cmd import keygen_command
from .model_cmd import evaluate_command, mark_command, train_command
from .robustness_cmd import robustness_command
from .verify_cmd import verify_command

app = typer.Typer(
    name="wmproof",
    help="Prove that a suspect neural network is yours: committed, signed watermark keys; marking; verification.\n\n"
    "Exit codes: 0 verified, 1 not verified, 2 usage, 3 malformed input, 4 chain unavailable, 5 I/O.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(identity_cmd.app, name="identity")
app.command("keygen")(keygen_command)
app.command("train")(train_command)
app.command("mark")(mark_command)
app.command("evaluate")(evaluate_command)
app.command("verify")(verify_command)
app.command("demo")(demo_command)
app.command("prove")(proof_cmd.prove_command)
app.command("check")(proof_cmd.check_command)
app.command("serve")(serve_cmd.serve_command)
app.add_typer(export_cmd.app, name="export")
app.add_typer(attack_cmd.app, name="attack")
app.command("robustness")(robustness_command)
app.command("publish")(chain_cmd.publish_command)
app.command("timestamp")(chain_cmd.timestamp_command)
app.add_typer(chain_cmd.app, name="chain")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wmproof {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    threads: int | None = typer.Option(
        None,
        "--threads",
        envvar="WMPROOF_THREADS",
        min=1,
        help="CPU threads for torch (before the command: wmproof --threads 1 train ...). Default: the CPUs this "
        "process may use (affinity, cgroup quota) less those busy now. Seeded results are reproducible for a "
        "fixed count.",
        show_default=False,
    ),
) -> None:
    """wmproof."""
    from wmproof.engine.threads import request_threads

    request_threads(threads)


def run_cli(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; parser errors become one line on stderr (exit 2)."""
    try:
        result = app(args=argv, prog_name="wmproof", standalone_mode=False)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:
        # typer vendors click; its parser errors carry format_message() and exit_code (import only typer).
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help was printed, nothing to add
            return int(ExitCode.USAGE)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = exc.format_message()
            if "--threads" in message and "No such option" in message:  # a global option, given after the command
                hint = " (it goes before the command: wmproof --threads N COMMAND, or $WMPROOF_THREADS)"
            print(f"error: {message}{hint}", file=sys.stderr)
            return int(exc.exit_code)
        if type(exc).__name__ == "Abort":  # Ctrl-C at a prompt
            print("error: interrupted", file=sys.stderr)
            return int(ExitCode.INTERRUPTED)
        raise
    return int(result or 0)


def main() -> None:
    sys.exit(run_cli())


if __name__ == "__main__":
    main()

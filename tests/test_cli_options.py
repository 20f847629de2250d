"""The CLI's options, across every command (issue 15, item 4): one flag, one meaning.

Found before: ``mark -k`` was claimed by both ``--key`` and ``--triggers-per-batch`` (click kept the last, so
``mark -k key.wmk`` read the key's path as a number), while ``-k`` is ``--key`` in every other command.
"""

from __future__ import annotations

from typing import Any

import typer


def all_commands() -> list[tuple[str, Any]]:
    """Every leaf command of the CLI, with its full name (typer builds them on its own copy of click)."""
    from wmproof_cli.main import app

    found: list[tuple[str, Any]] = []
    stack: list[tuple[str, Any]] = [("wmproof", typer.main.get_command(app))]
    while stack:
        name, command = stack.pop()
        if getattr(command, "commands", None):
            stack.extend((f"{name} {sub}", command.commands[sub]) for sub in command.commands)
        else:
            found.append((name, command))
    return sorted(found, key=lambda pair: pair[0])


def test_no_flag_is_declared_twice_in_a_command():
    for name, command in all_commands():
        seen: dict[str, str] = {}
        for param in command.params:
            for flag in [*param.opts, *param.secondary_opts]:
                assert flag not in seen, f"{name}: {flag} is both {seen[flag]} and {param.name}"
                seen[flag] = param.name


def test_a_short_flag_means_the_same_long_flag_in_every_command():
    meaning: dict[str, tuple[str, str]] = {}
    for name, command in all_commands():
        for param in command.params:
            shorts = [f for f in param.opts if len(f) == 2]
            longs = [f for f in param.opts if f.startswith("--")]
            for short in shorts:
                if short in meaning:
                    first, where = meaning[short]
                    assert longs[0] == first, f"{short} is {first} in {where} but {longs[0]} in {name}"
                else:
                    meaning[short] = (longs[0], name)
    assert meaning["-k"][0] == "--key"


def test_a_bare_group_prints_its_help_and_no_empty_error(capsys):
    """Before: ``wmproof identity`` printed its help, then ``error:  (see 'wmproof identity --help')``."""
    from wmproof_cli.main import run_cli

    for group in ([], ["identity"], ["attack"], ["chain"], ["export"]):
        capsys.readouterr()
        assert run_cli(group) == 2
        out, err = capsys.readouterr()
        assert "Usage: wmproof" in out and "Commands" in out and err == "", (group, err)


def test_every_command_has_json_and_an_example():
    """Issue 15, item 4: ``--json`` for scripts and an example in ``--help``, in every command."""
    for name, command in all_commands():
        flags = {flag for param in command.params for flag in param.opts}
        assert "--json" in flags, f"{name} has no --json"
        assert "Example" in (command.help or ""), f"{name} --help has no example"


def test_threads_given_after_the_command_says_where_it_goes():
    from helpers import run

    error = run("train", "--threads", "1", code=2).stderr
    assert "wmproof --threads N COMMAND" in error

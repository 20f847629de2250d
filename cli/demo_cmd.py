"""``wmproof demo``: the whole path, owner to judge, on MNIST and the CPU."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from wmproof.errors import UsageError
from wmproof.stats import parse_probability

from .chain_cmd import embedded_warning
from .common import (
    ARCHITECTURE_HELP,
    DataDirOption,
    DeviceOption,
    JsonOption,
    LimitOption,
    emit,
    handle_errors,
    note,
    stdout,
)


@handle_errors
def demo_command(
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="Keep every file here (default: a temporary directory, removed afterwards).",
            show_default=False,
        ),
    ] = None,
    arch: Annotated[str, typer.Option("--arch", help=ARCHITECTURE_HELP)] = "mnist_fast",
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs", help="Epochs for the clean models (default: the recipe's).", show_default=False, min=1
        ),
    ] = None,
    items: Annotated[int, typer.Option("--items", "-n", help="Trigger items in the key.", min=1)] = 100,
    alpha: Annotated[str, typer.Option("--alpha", help="Significance level bound into the key.")] = "1e-6",
    triggers_per_batch: Annotated[
        int, typer.Option("--triggers-per-batch", min=1, help="Trigger items appended to every batch.")
    ] = 2,
    seed: Annotated[
        int, typer.Option("--seed", help="Base seed (clean: seed, independent: seed+1, marking: seed+2).")
    ] = 0,
    device: DeviceOption = "auto",
    data_dir: DataDirOption = None,
    limit_train: LimitOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the whole path on MNIST: train, create an identity and a key, mark, and verify.

    The owner trains a clean model, creates an identity and a committed key and marks the model; the
    judge verifies the marked model and an independently trained one from the files on disk. The key is
    timestamped on the embedded chain (your data home, like `wmproof publish`). Prints test
    accuracy before and after marking, trigger accuracy, p-values and verdicts. Under a minute on 2 CPU cores.

    Example:

        wmproof demo --workdir demo-out
    """
    import importlib.util

    needs = (("torch", "ml"), ("web3", "chain"))
    missing = ",".join(extra for module, extra in needs if importlib.util.find_spec(module) is None)
    if missing:  # both at once, rather than one after the other
        raise UsageError(f"wmproof demo trains a model and timestamps a key: pip install 'wmproof[{missing}]'")
    from wmproof.demo import run_demo

    try:
        significance = parse_probability(alpha)
    except ValueError as exc:
        raise UsageError(f"--alpha: {exc}") from None
    if workdir is not None and workdir.exists() and not workdir.is_dir():
        raise UsageError(f"--workdir {workdir} exists and is not a directory")
    options = dict(
        architecture=arch,
        epochs=epochs,
        items=items,
        seed=seed,
        alpha=significance,
        device_name=device,
        data_dir=data_dir,
        limit_train=limit_train,
        triggers_per_batch=triggers_per_batch,
        log=note,
    )
    if workdir is not None:
        result = run_demo(workdir, **options)
    else:
        with tempfile.TemporaryDirectory(prefix="wmproof-demo-") as tmp:
            result = run_demo(Path(tmp), **options)

    def human() -> None:
        table = Table(title=f"wmproof demo: Adi et al. backdoor watermark, {arch} on MNIST, {items}-item key")
        for column in ("model", "test acc", "trigger acc", "matches", "p-value", "verdict"):
            table.add_column(column, justify="left" if column in ("model", "verdict") else "right")
        for row in result.rows:
            stats = row.report["statistics"]
            verdict = row.report["verdict"]
            table.add_row(
                row.name,
                f"{row.test_accuracy:.4f}",
                f"{row.trigger_accuracy:.2f}",
                f"{stats['matches']}/{stats['n']}",
                stats["p_value"],
                f"[green]{verdict}[/]" if verdict == "verified" else f"[red]{verdict}[/]",
            )
        stdout.print(table)
        stdout.print("; ".join(f"{row.name}: {row.role}" for row in result.rows))
        rows = {row.name: row for row in result.rows}
        stdout.print(
            f"decision: verified when >= {rows['marked'].report['statistics']['min_matches']} items match "
            f"(exact one-sided binomial, p0 = 1/10, alpha = {rows['marked'].report['statistics']['alpha']})"
        )
        stdout.print(
            f"marking: {result.mark_epochs} epochs of PreTrained fine-tuning; test accuracy "
            f"{rows['clean'].test_accuracy:.4f} -> {rows['marked'].test_accuracy:.4f}"
        )
        ts = result.timestamp
        stdout.print(
            f"timestamp: key {ts['key_id'][:16]} registered {ts['time']}, block {ts['block_number']} of the "
            f"{ts['network']} (checked by the judge against the key, storage, event, receipt and block)"
        )
        stdout.print(
            f"seeds: {result.seeds}; wall time {result.timings['total']:.0f} s"
            + (f"; files in {workdir}" if workdir is not None else "")
        )

    emit(result.as_dict(), as_json, human)
    embedded_warning(result.timestamp["embedded"])

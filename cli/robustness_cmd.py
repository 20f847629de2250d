"""``wmproof robustness``: the robustness matrix (every scheme x every attack x strengths x seeds), in a local
process pool or on a Ray cluster, resumable; JSON, Markdown and a heat map at the end."""

from __future__ import annotations

import dataclasses
import importlib.util
import shlex
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from wmproof.errors import ExitCode, UsageError

from .common import ARCHITECTURE_NAMES, DataDirOption, JsonOption, emit, fail, handle_errors, note, stdout


def _names(text: str | None, known: tuple[str, ...], what: str) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UsageError(f"--{what}: unknown {what[:-1]} {', '.join(map(repr, unknown)) or '(none given)'} "
                         f"(known: {', '.join(known)})")  # fmt: skip
    return names


#: Options that change where the report goes or how the command answers, not what the sweep is.
_RENDERING = {"--report-only": 0, "--json": 0, "--report": 1}


def _sweep_command(arguments: list[str]) -> str:
    """The command line that made the sweep, for its report: the given one without the rendering options, so
    that a report rendered later with ``--report-only`` names the sweep, not the rendering."""
    kept, skip = [], 0
    for argument in arguments:
        if skip:
            skip -= 1
            continue
        name = argument.split("=", 1)[0]
        if name in _RENDERING:
            skip = _RENDERING[name] if "=" not in argument else 0
            continue
        kept.append(argument)
    return shlex.join(["wmproof", *kept])


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@handle_errors
def robustness_command(
    workdir: Annotated[
        Path,
        typer.Option(
            "--workdir",
            help="The sweep's folder: its models, keys and one record per cell. Run the "
            "same command again to resume an interrupted sweep.",
        ),
    ] = Path("robustness-out"),  # fmt: skip
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="The quick configuration: one seed, one strength per attack, 10,000 "
            "owner images, 30-item keys (minutes on 2 cores). Default: the full one.",
        ),
    ] = False,  # fmt: skip
    schemes: Annotated[
        str | None,
        typer.Option("--schemes", help="Comma-separated schemes (default: every registered one).", show_default=False),
    ] = None,  # fmt: skip
    attacks: Annotated[
        str | None,
        typer.Option("--attacks", help="Comma-separated attacks (default: every registered one).", show_default=False),
    ] = None,  # fmt: skip
    seeds: Annotated[
        int | None,
        typer.Option("--seeds", min=1, help="Seeds 0..N-1 (default: 3, or 1 with --quick).", show_default=False),
    ] = None,  # fmt: skip
    arch: Annotated[
        str, typer.Option("--arch", help=f"The zoo's architecture every model has: {', '.join(ARCHITECTURE_NAMES)}.")
    ] = "mnist_fast",
    dataset: Annotated[str, typer.Option("--dataset", help="mnist or fashion-mnist.")] = "mnist",
    owner_images: Annotated[
        int | None,
        typer.Option(
            "--owner-images",
            min=1,
            show_default=False,
            help="The owner's training images, the first of the split (default: 50,000; 10,000 with --quick).",
        ),
    ] = None,  # fmt: skip
    items: Annotated[
        int | None,
        typer.Option("--items", min=1, show_default=False, help="Items per key (default 100; 30 with --quick)."),
    ] = None,  # fmt: skip
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            show_default=False,
            help="Local processes running units at once (default: the CPUs available).",
        ),
    ] = None,  # fmt: skip
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            show_default=False,
            help="Run the units on an existing Ray cluster instead: auto, host:port or "
            "ray://host:port (pip install 'wmproof[ray]').",
        ),
    ] = None,  # fmt: skip
    threads: Annotated[
        int,
        typer.Option(
            "--unit-threads",
            min=1,
            help="torch threads per unit (units, not threads, share "
            "the cores; results are reproducible for a fixed count).",
        ),
    ] = 1,  # fmt: skip
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N: where every unit computes.")] = "cpu",
    data_dir: DataDirOption = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            show_default=False,
            help="Write the Markdown report here, its heat map beside it (.png) (default: WORKDIR/robustness.md).",
        ),
    ] = None,  # fmt: skip
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Only (re)write the report of a finished sweep.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Every registered scheme against every registered attack, at a grid of strengths, over seeds.

    Per cell: accuracy after the attack, watermark accuracy, verdict and p-value at the key's alpha; per attack:
    the TPR over attacked marked models, the FPR over attacked unmarked ones, and the strongest strength that
    keeps accuracy within 1 and 3.5 points. Writes results.json, robustness.md and robustness.png into the
    work folder. Units are independent: they run in a local process pool, or on a Ray cluster.

    Examples:

        wmproof robustness --quick --workdir quick-sweep

        wmproof robustness --workdir mnist-sweep --attacks prune,ftal,extract --seeds 5

        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head --port 6379

        wmproof robustness --quick --workdir quick-sweep --ray-address 127.0.0.1:6379
    """
    missing = [
        extra for module, extra in (("torch", "ml"), ("matplotlib", "repro")) if not importlib.util.find_spec(module)
    ]
    if missing:
        raise UsageError(
            f"wmproof robustness trains models and draws a heat map: pip install 'wmproof[{','.join(missing)}]'"
        )
    from wmproof.attacks import ATTACKS
    from wmproof.engine.threads import available_cpus
    from wmproof.robustness import FULL, QUICK
    from wmproof.robustness.executors import open_executor
    from wmproof.robustness.report import write_report
    from wmproof.robustness.sweep import Sweep
    from wmproof.schemes import SCHEMES

    if ray_address is not None and workers is not None:
        raise UsageError("--workers is for the local pool; a Ray cluster runs as many units as it has CPUs")
    base = QUICK if quick else FULL
    changes = {
        "schemes": _names(schemes, tuple(SCHEMES), "schemes"),
        "attacks": _names(attacks, tuple(ATTACKS), "attacks"),
        "seeds": None if seeds is None else tuple(range(seeds)),
        "owner_images": owner_images,
        "items": items,
    }
    config = dataclasses.replace(
        base, arch=arch, task=dataset, device=device, **{k: v for k, v in changes.items() if v is not None}
    )
    if dataset not in ("mnist", "fashion-mnist"):
        raise UsageError(f"--dataset: the sweep runs on mnist or fashion-mnist, not {dataset!r}")
    config.validate()
    if report is not None and report.suffix != ".md":
        raise UsageError(f"--report names a Markdown file (.md), not {report}")
    command = _sweep_command(sys.argv[1:]) if Path(sys.argv[0]).name == "wmproof" else "wmproof robustness"
    if not report_only:
        executor = open_executor(available_cpus() if workers is None else workers, ray_address,
                                 gpu=device.startswith("cuda"))  # fmt: skip
        note(f"sweep {config.name} in {workdir}: {len(config.cells())} cells, run in {executor.describe()}")
        previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops the workers too, as Ctrl-C does
        try:
            outcome = Sweep(config, workdir, executor, data_dir=None if data_dir is None else str(data_dir),
                            threads=threads).run()  # fmt: skip
        except KeyboardInterrupt:
            executor.abort()
            raise fail(
                f"interrupted: the finished units are kept in {workdir}; run the same command to resume",
                int(ExitCode.INTERRUPTED),
            ) from None
        except BaseException:
            executor.abort()
            raise
        else:
            executor.close()
        finally:
            signal.signal(signal.SIGTERM, previous)
        note(f"{outcome.ran} units run now, {outcome.reused} found done, in {outcome.wall_seconds:.0f} s")
    summary = write_report(workdir, config, command, report)

    def human() -> None:
        stdout.print(f"wrote {summary['markdown']}, {summary['figure']} and {summary['results']}")
        for row in summary["summary"]:
            stdout.print(
                f"{row['scheme']:>20} {row['attack']:>13}: within 3.5 points "
                + ("–" if row["strength"] is None else f"{row['strength']}: TPR {row['tpr']}, FPR {row['fpr']}")
            )

    emit(summary, as_json, human)

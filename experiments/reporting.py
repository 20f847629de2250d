"""What every reproduction script shares: timestamped progress on stderr, and mean ± sd over seeds."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wmproof.stats import mean_sd  # noqa: F401  (the one definition; the scripts import it from here)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


#: When this process's run began (set by reproduce()): a resumed run's wall time adds its own to the kept one's.
_started = time.perf_counter()


@dataclass(frozen=True)
class Groups:
    """Runs that depend on part of the configuration only: a run's ``field`` names its group (its architecture
    or data set), and ``part(config, group)`` is the configuration that group's runs depend on. A change to one
    group's settings then reruns that group alone (hours saved when one architecture's recipe changes). The
    later ``steps`` named here are kept as dicts keyed by group, and kept per group likewise."""

    field: str
    part: Callable[[dict[str, Any], str], Any]
    steps: tuple[str, ...] = ()


def resume(results: dict[str, Any], results_path: Path, groups: Groups | None = None) -> None:
    """Take into ``results`` the runs (and later steps) an interrupted run of the same configuration on the same
    device kept at ``results_path`` (every run is a function of its configuration and seed, so a kept one is not
    redone). With ``groups``, a run of another configuration is kept too when its group's part of the
    configuration is unchanged; the groups rerun are listed in ``results["rerun"]``, and the wall time still
    counts the discarded runs' (it is the time spent making these results)."""
    import json

    if not results_path.exists():
        return
    kept = json.loads(results_path.read_text())
    config = json.loads(json.dumps(results["config"]))
    if kept.get("device") != results["device"] or "config" not in kept:
        return
    if config == kept["config"]:
        # the runs, and whatever else the run had kept (steps after the runs), but not the versions just read
        results.update({k: v for k, v in kept.items() if k == "runs" or k not in results})
    elif groups is not None:

        def same(group: str) -> bool:
            return groups.part(config, group) == groups.part(kept["config"], group)

        runs = [r for r in kept["runs"] if same(r[groups.field])]
        if not runs:
            return
        rerun = sorted({r[groups.field] for r in kept["runs"]} - {r[groups.field] for r in runs})
        results["runs"] = runs
        results["rerun"] = sorted(set(kept.get("rerun", [])) | set(rerun))
        for step in groups.steps:
            results[step] = {g: v for g, v in kept.get(step, {}).items() if same(g)}
        # what describes the machine and the time spent (load samples, notes), not the versions just read
        results.update({k: v for k, v in kept.items() if k not in results and k not in groups.steps})
        log(f"the configuration of {', '.join(rerun)} changed: rerunning it")
    else:
        return
    results["seconds_before"] = kept.get("seconds", 0.0)
    log(f"resuming: {len(results['runs'])} runs kept in {results_path}")


def keep(results: dict[str, Any], results_path: Path) -> None:
    """Write the results so far (after every run: an interruption loses at most the run in flight), with the
    wall time spent on them, over every process that worked on them."""
    import json

    results["seconds"] = results.get("seconds_before", 0.0) + time.perf_counter() - _started
    # the machine's 1-minute load average at each run's end: a wall time means little on a shared machine
    results.setdefault("load", []).append(round(os.getloadavg()[0], 2))
    results["cores"] = os.cpu_count()
    results_path.write_text(json.dumps({k: v for k, v in results.items() if k != "seconds_before"}, indent=1))


def machine_load(results: dict[str, Any]) -> str:
    """How busy the machine was while the results were made (the 1-minute load average at each run's end,
    against its cores), for the sentence that gives their wall time."""
    samples = results.get("load", [])
    if not samples:
        return ""
    return (f" (load average {statistics.fmean(samples):.1f} on {results.get('cores', os.cpu_count())} cores "
            f"over {len(samples)} samples)")  # fmt: skip


def reproduce(
    script: str,
    doc: str,
    description: str,
    configs: dict[str, Any],
    run: Callable[[Any, Path], dict[str, Any]],
    plot: Callable[[dict[str, Any], Path], None],
    render: Callable[[dict[str, Any], str], str],
    *,
    committed: str = "cpu",
) -> None:
    """The command line every reproduction shares: ``--config`` (the ``committed`` one, ``cpu`` unless the
    paper's own set-up fits this CPU, writes docs/reproductions/DOC.md, the others a scratch folder unless
    ``--out``), ``--report-only`` to re-render from the kept results.json; the report names the command that
    made the results, not the rendering. ``run(config, results_path)`` may keep partial results at
    ``results_path`` and resume from them (a run of hours must survive an interruption)."""
    import argparse
    import json
    import shlex
    import tempfile

    global _started
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", choices=sorted(configs), default=committed)
    parser.add_argument("--out", type=Path, help="directory of the report (default: docs/reproductions for the "
                        f"{committed} configuration, a scratch directory for the others)")  # fmt: skip
    parser.add_argument("--report-only", action="store_true", help="re-render the report from its results.json")
    args = parser.parse_args()
    docs = Path(__file__).resolve().parent.parent / "docs" / "reproductions"
    out = args.out or (docs if args.config == committed else Path(tempfile.gettempdir()) / f"{doc}-{args.config}")
    report, assets = out / f"{doc}.md", out / doc
    results_path = assets / "results.json"
    command = shlex.join(["python", f"experiments/{script}", *(a for a in sys.argv[1:] if a != "--report-only")])
    if args.report_only:
        if not results_path.exists():
            sys.exit(f"{results_path}: no results to re-render; run without --report-only first")
        results = json.loads(results_path.read_text())
    else:
        assets.mkdir(parents=True, exist_ok=True)
        _started = time.perf_counter()
        results = run(configs[args.config], results_path)
        keep(results, results_path)
    plot(results, assets)
    report.write_text(render(results, command))
    log(f"wrote {report} and its plot")

"""What every reproduction script shares: timestamped progress on stderr, and mean ± sd over seeds."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wmproof.stats import mean_sd  # noqa: F401  (the one definition; the scripts import it from here)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def reproduce(
    script: str,
    doc: str,
    description: str,
    configs: dict[str, Any],
    run: Callable[[Any], dict[str, Any]],
    plot: Callable[[dict[str, Any], Path], None],
    render: Callable[[dict[str, Any], str], str],
) -> None:
    """The command line every reproduction shares: ``--config`` (the ``cpu`` one writes
    docs/reproductions/DOC.md, the others a scratch folder unless ``--out``), ``--report-only`` to re-render
    from the kept results.json; the report names the command that made the results, not the rendering."""
    import argparse
    import json
    import shlex
    import tempfile

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", choices=sorted(configs), default="cpu")
    parser.add_argument("--out", type=Path, help="directory of the report (default: docs/reproductions for the "
                        "cpu configuration, a scratch directory for the others)")  # fmt: skip
    parser.add_argument("--report-only", action="store_true", help="re-render the report from its results.json")
    args = parser.parse_args()
    docs = Path(__file__).resolve().parent.parent / "docs" / "reproductions"
    out = args.out or (docs if args.config == "cpu" else Path(tempfile.gettempdir()) / f"{doc}-{args.config}")
    report, assets = out / f"{doc}.md", out / doc
    results_path = assets / "results.json"
    command = shlex.join(["python", f"experiments/{script}", *(a for a in sys.argv[1:] if a != "--report-only")])
    if args.report_only:
        if not results_path.exists():
            sys.exit(f"{results_path}: no results to re-render; run without --report-only first")
        results = json.loads(results_path.read_text())
    else:
        assets.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        results = run(configs[args.config])
        results["seconds"] = time.perf_counter() - started
        results_path.write_text(json.dumps(results, indent=1))
    plot(results, assets)
    report.write_text(render(results, command))
    log(f"wrote {report} and its plot")

"""A finished sweep as numbers: the per-attack true- and false-positive rates, the strongest attack that keeps the
model useful, and the whole grid, as JSON (``results.json``), Markdown (``robustness.md``) and a heat map
(``robustness.png``).

The conventions are those of watermark benchmarks (Lukas et al., IEEE S&P 2022, section V): the
**true-positive rate** of an attack is the share of attacked marked models on which the owner's key is still
verified, at the key's own alpha; the **false-positive rate** is the share of unmarked models (trained
independently of the owner, then attacked the same way) on which it is verified. An attack is "within 1
point" when the attacked models' test accuracy is on average at most 1 point below the models it attacked
(3.5 points: the looser budget), and the strongest such strength of each attack is what the summary reports.
Transfer learning moves the model to another task; its accuracy is not comparable, so it has no "within".
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..stats import mean_sd
from .grid import UNMARKED

#: The accuracy budgets of the summary, in points of test accuracy.
BUDGETS = (1.0, 3.5)


@dataclass(frozen=True)
class Rate:
    """k of n verified."""

    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else math.nan

    def __str__(self) -> str:
        return f"{self.k}/{self.n}" if self.n else "–"


@dataclass(frozen=True)
class Group:
    """The cells of one (scheme, attack, strength) over the seeds, and the unmarked cells beside them."""

    scheme: str
    attack: str
    strength: Any
    marked: list[dict[str, Any]]
    unmarked: list[dict[str, Any]]
    skipped: int
    #: The attack moved the model to another task (transfer learning): its accuracy is not comparable.
    changes_task: bool

    @property
    def drop(self) -> tuple[float, float]:
        """Test accuracy lost by the attack, in points (mean, sd over seeds)."""
        return mean_sd([100 * (c["test_accuracy_before"] - c["test_accuracy_after"]) for c in self.marked])

    @property
    def accuracy(self) -> tuple[float, float]:
        return mean_sd([100 * c["test_accuracy_after"] for c in self.marked])

    @property
    def watermark_accuracy(self) -> tuple[float, float]:
        return mean_sd([100 * c["keys"][self.scheme]["watermark_accuracy"] for c in self.marked])

    @property
    def tpr(self) -> Rate:
        return Rate(sum(c["keys"][self.scheme]["verified"] for c in self.marked), len(self.marked))

    @property
    def fpr(self) -> Rate:
        return Rate(sum(c["keys"][self.scheme]["verified"] for c in self.unmarked), len(self.unmarked))

    @property
    def p_values(self) -> list[float]:
        return sorted(c["keys"][self.scheme]["p_value"] for c in self.marked)


def groups(results: dict[str, Any]) -> list[Group]:
    config = results["config"]
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for cell in results["cells"]:
        attack, strength, _, subject = cell["cell"].split("/")
        by_key.setdefault((attack, strength, subject), []).append(cell)
    out = []
    for attack in config["attacks"]:
        for value in config["strengths"][attack]:
            label = f"{_param(attack)}={value}"
            unmarked = by_key.get((attack, label, UNMARKED), [])
            moved = any(c["task_after"] != config["task"] for c in unmarked)
            for scheme in config["schemes"]:
                cells = by_key.get((attack, label, scheme), [])
                marked = [c for c in cells if "skipped" not in c]
                out.append(Group(scheme, attack, value, marked, unmarked, len(cells) - len(marked), moved))
    return out


def strongest_within(results: dict[str, Any], budget: float) -> dict[tuple[str, str], Group | None]:
    """Per (scheme, attack): the strongest strength whose mean accuracy loss is at most ``budget`` points."""
    out: dict[tuple[str, str], Group | None] = {}
    for group in groups(results):
        key = (group.scheme, group.attack)
        out.setdefault(key, None)
        if group.marked and not group.changes_task and group.drop[0] <= budget:
            out[key] = group  # strengths come weakest first: the last one that fits wins
    return out


# ---------------------------------------------------------------------------------------------- Markdown


def _pm(pair: tuple[float, float], digits: int = 1) -> str:
    mean, sd = pair
    return "–" if math.isnan(mean) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _p(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.1e}" if values else "–"


def markdown(results: dict[str, Any], command: str, wall_seconds: float | None, figure: str | None) -> str:
    config = results["config"]
    env = results["cells"][0] if results["cells"] else results["models"][0]
    seeds = config["seeds"]
    lines = [
        f"# Robustness matrix: {config['task']}, `{config['arch']}`, {len(seeds)} seed{'s' if len(seeds) > 1 else ''}",
        "",
        f"Made by `{command}`"
        + (f" in {wall_seconds / 60:.1f} min of wall time" if wall_seconds is not None else "")
        + f" on {env['device']} ({env['threads']} thread per unit); versions "
        + ", ".join(f"{k} {v}" for k, v in sorted(env["versions"].items()))
        + ".",
        "",
        f"Every registered scheme against every registered attack. The owner trains `{config['arch']}` on "
        f"{config['task']} train[0:{config['owner_images']:,}] (seeds {', '.join(map(str, seeds))}); each scheme's "
        f"{config['items']}-item key is embedded PreTrained into that clean model; the unmarked models are trained "
        "the same way from another seed, without any key. Each attack runs at each strength on every marked model "
        "and on the unmarked one (the adversary's data are the last images of the training split). **TPR**: "
        "attacked marked models on which the owner's key is still verified; **FPR**: attacked unmarked models on "
        "which it is verified; both at the key's alpha, by the key's own test (exact binomial for label-match "
        "keys, one-sided Wilcoxon signed-rank for the source-to-target ones), as k/n over the seeds. Accuracy is "
        "on the full test set, mean ± sd over seeds, in percent.",
        "",
    ]
    if figure:
        lines += [f"![TPR at the strongest attack within 3.5 points]({figure})", ""]

    # ---- before any attack
    keys = {(k["seed"], k["scheme"]): k for k in results["keys"]}
    clean = {m["seed"]: m for m in results["models"] if m["role"] == "clean"}
    negatives = {m["seed"]: m for m in results["models"] if m["role"] == UNMARKED}
    lines += [
        "## Before any attack",
        "",
        f"Owner's clean models: {_pm(mean_sd([100 * clean[s]['test_accuracy'] for s in seeds]), 2)} %; unmarked "
        f"models: {_pm(mean_sd([100 * negatives[s]['test_accuracy'] for s in seeds]), 2)} %.",
        "",
        "| scheme | alpha | test | embedded | marking epochs | marked acc. | wm acc. | TPR | FPR (owner's clean) | "
        "FPR (unmarked) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scheme in config["schemes"]:
        recs = [keys[(s, scheme)] for s in seeds]
        done = [r for r in recs if r["embedded"]]
        lines.append(
            f"| {scheme} | {config['alphas'][scheme]} | {_test_name(recs[0]['clean']['test'])} | "
            f"{len(done)}/{len(recs)} | "
            f"{_pm(mean_sd([r['marking_epochs'] for r in done]))} | "
            f"{_pm(mean_sd([100 * r['test_accuracy'] for r in done]), 2)} | "
            f"{_pm(mean_sd([100 * r['marked']['watermark_accuracy'] for r in done]))} | "
            f"{Rate(sum(r['marked']['verified'] for r in done), len(done))} | "
            f"{Rate(sum(r['clean']['verified'] for r in recs), len(recs))} | "
            f"{Rate(sum(r['unmarked']['verified'] for r in recs), len(recs))} |"
        )
    failed = [r for r in results["keys"] if not r["embedded"]]
    for r in failed:
        lines.append(f"\n{r['scheme']}, seed {r['seed']}: not embedded ({r['reason']}); its cells are skipped.")
    lines.append("")

    # ---- the summary
    within = {budget: strongest_within(results, budget) for budget in BUDGETS}
    lines += [
        "## The strongest attack that keeps the model useful",
        "",
        "Per scheme and attack: the strongest strength whose accuracy loss is at most 1 point (then 3.5 points), "
        "its TPR and the FPR of the same attack on the unmarked models. `–`: even the weakest strength costs more; "
        "transfer learning changes the task, so it has none.",
        "",
        "| scheme | attack | within 1 point: strength | TPR | FPR | within 3.5 points: strength | TPR | FPR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scheme in config["schemes"]:
        for attack in config["attacks"]:
            row = [scheme, attack]
            for budget in BUDGETS:
                g = within[budget][(scheme, attack)]
                row += ["–", "–", "–"] if g is None else [f"{_param(attack)}={g.strength}", str(g.tpr), str(g.fpr)]
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")

    # ---- every cell
    lines += [
        "## Every cell",
        "",
        "Accuracy after the attack and the loss it caused (points), watermark accuracy (the share of the key's items "
        "answered with their label), TPR with the median p-value over the seeds, and the FPR of the same attack on "
        "the unmarked models.",
        "",
    ]
    for attack in config["attacks"]:
        lines += [
            f"### {attack}",
            "",
            f"| {_param(attack)} | scheme | acc. after | loss | wm acc. | TPR | median p | FPR |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for g in (g for g in groups(results) if g.attack == attack):
            if not g.marked:
                lines.append(f"| {g.strength} | {g.scheme} | not embedded | | | | | {g.fpr} |")
                continue
            lines.append(
                f"| {g.strength} | {g.scheme} | {_pm(g.accuracy, 2)} | {_pm(g.drop, 2)} | "
                f"{_pm(g.watermark_accuracy)} | {g.tpr} | {_p(g.p_values)} | {g.fpr} |"
            )
        lines.append("")
    return "\n".join(lines)


def _test_name(test: str) -> str:
    return "binomial" if "binomial" in test else "Wilcoxon" if "Wilcoxon" in test else test


def _param(attack: str) -> str:
    from ..attacks import get_attack

    return get_attack(attack).strength.param


# ---------------------------------------------------------------------------------------------- heat map


def heat_map(results: dict[str, Any]) -> bytes:
    """Schemes x attacks: the TPR at each attack's strongest strength within 3.5 points (colour), with the
    strength and the FPR written in the cell; grey where no strength fits the budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    config = results["config"]
    schemes, attacks = config["schemes"], config["attacks"]
    within = strongest_within(results, BUDGETS[-1])
    values = np.full((len(schemes), len(attacks)), np.nan)
    fig, ax = plt.subplots(figsize=(1.1 * len(attacks) + 2.5, 0.75 * len(schemes) + 1.8))
    for i, scheme in enumerate(schemes):
        for j, attack in enumerate(attacks):
            g = within[(scheme, attack)]
            if g is None:
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="0.35")
                continue
            values[i, j] = g.tpr.value
            ax.text(j, i, f"{g.tpr}\n{g.strength}\nFPR {g.fpr}", ha="center", va="center", fontsize=6.5,
                    color="white" if g.tpr.value < 0.5 else "black")  # fmt: skip
    cmap = matplotlib.colormaps["viridis"].copy()
    cmap.set_bad("0.85")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(attacks)), attacks, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(schemes)), schemes, fontsize=8)
    ax.set_title(
        f"TPR at the strongest attack within 3.5 points ({config['task']}, {config['arch']}, "
        f"{len(config['seeds'])} seed{'s' if len(config['seeds']) > 1 else ''})",
        fontsize=9,
    )
    fig.colorbar(image, ax=ax, fraction=0.03, label="owner's key verified (TPR)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130, metadata={"Software": None})  # no version stamp: same bytes
    plt.close(fig)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------ outputs


def write_report(folder: Any, config: Any, command: str, report: Any = None) -> dict[str, Any]:
    """Write ``results.json`` (every record, and the driver's runs) into the finished sweep's ``folder``, and
    the Markdown ``report`` (default ``folder/robustness.md``) with its heat map beside it (the same name,
    ``.png``); return the summary (paths, and per scheme and attack the strongest strength within 3.5
    points)."""
    from pathlib import Path

    from ..fileio import write_file
    from .sweep import check_manifest, dump_json, load_records, read_runs

    folder = Path(folder)
    if not (folder / "sweep.json").exists():
        raise UsageError(f"{folder} holds no sweep (no sweep.json): run the sweep first")
    check_manifest(folder, config)
    results = load_records(folder, config)
    runs = read_runs(folder)
    wall = sum(r["wall_seconds"] for r in runs) if runs else None
    results["runs"] = runs
    results["command"] = command
    markdown_path = folder / "robustness.md" if report is None else Path(report)
    paths = {
        "results": folder / "results.json",
        "markdown": markdown_path,
        "figure": markdown_path.with_suffix(".png"),
    }
    write_file(paths["results"], dump_json(results), secret=False, overwrite=True)
    write_file(paths["figure"], heat_map(results), secret=False, overwrite=True)
    text = markdown(results, command, wall, paths["figure"].name)
    write_file(paths["markdown"], text.encode(), secret=False, overwrite=True)
    within = strongest_within(results, BUDGETS[-1])
    summary = [
        {"scheme": scheme, "attack": attack, "strength": None if g is None else g.strength,
         "tpr": None if g is None else str(g.tpr), "fpr": None if g is None else str(g.fpr)}
        for (scheme, attack), g in within.items()
    ]  # fmt: skip
    return {**{k: str(v) for k, v in paths.items()}, "wall_seconds": wall, "summary": summary}

"""Adi et al. 2018 ("Turning Your Weakness Into a Strength: Watermarking Deep Neural Networks by Backdooring",
USENIX Security), section 5, on MNIST and Fashion-MNIST. Writes docs/reproductions/adi-backdoor.md with its
plots and results.json.

The paper's experiments are on CIFAR-10, CIFAR-100 (and ImageNet), which are not available here; this runs
the same protocol on the two image data sets that are, with `mnist_fast` (two convolutions and a dense layer,
the zoo's fastest MNIST network) in place of their ResNet-18. What runs, for each data set and seed:

1. **Table 1** (5.3): No-WM, the recipe on train[0:50,000]; FromScratch, the same training with the key's
   100 abstract images (random labels, 5.2) mixed into every batch (k = 2, 5.1); PreTrained, No-WM fine-tuned
   with the key mixed in (k = 2) until every item is learned. Test and trigger accuracy;
2. **Fig. 6** (5.4): FTLL, FTAL, RTLL, RTAL on both marked models, with the adversary's train[50,000:60,000]
   (the paper's adversary has the training set itself; ours has 10,000 images the owner never used) for the
   recipe's epochs;
3. **Fig. 7** (5.5, ownership piracy): the FromScratch model marked by a pirate with a new 100-item key
   (TS-New; `wmproof attack piracy`), then nothing, FTAL or RTAL; TS-Orig and TS-New accuracy;
4. **Table 2** (5.5, transfer learning): the FromScratch model re-trained on the other data set (RTAL-like:
   a new output layer, all layers trained, `wmproof attack transfer`), the trigger set read through the kept
   original output layer;
5. **4.2**: Hoeffding's bound beside the exact binomial threshold wmproof decides with.

    python experiments/adi_backdoor.py                  # cpu: 3 seeds, both data sets, about 40 minutes
    python experiments/adi_backdoor.py --config smoke   # 1 seed, MNIST, 5,000 images: about 3 minutes
    python experiments/adi_backdoor.py --report-only    # re-render from results.json

An interrupted run resumes: the finished (data set, seed) runs are kept in the results.json.
"""

from __future__ import annotations

import copy
import platform
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

# experiments/reporting.py (the script's own folder)
from reporting import keep, log, machine_load, mean_sd, reproduce, resume

ARCH = "mnist_fast"
OTHER = {"mnist": "fashion-mnist", "fashion-mnist": "mnist"}
FINE_TUNINGS = ("ftll", "ftal", "rtll", "rtal")

#: The paper's Table 1 (CIFAR-10 / CIFAR-100, ResNet-18): test accuracy, trigger accuracy.
PAPER_TABLE1 = {
    "No-WM": "93.42 / 7.0 (C10); 74.01 / 1.0 (C100)",
    "FromScratch": "93.81 / 100.0 (C10); 73.67 / 100.0 (C100)",
    "PreTrained": "93.65 / 100.0 (C10); 73.62 / 100.0 (C100)",
}
#: The paper's Table 2: CIFAR-10 -> STL-10 and CIFAR-100 -> STL-10, RTAL, 20 epochs: test, trigger accuracy.
PAPER_TABLE2 = "81.87 / 72.0 (C10 → STL-10); 77.3 / 62.0 (C100 → STL-10)"


@dataclass(frozen=True)
class Config:
    name: str
    seeds: int
    datasets: tuple[str, ...]
    owner_images: int
    items: int = 100


CONFIGS = {
    "cpu": Config("cpu", 3, ("mnist", "fashion-mnist"), 50_000),
    "smoke": Config("smoke", 1, ("mnist",), 5_000),
}


def run(config: Config, results_path: Path) -> dict[str, Any]:
    import torch

    from wmproof.attacks import run_attack
    from wmproof.attacks.base import AttackContext
    from wmproof.engine.data import load_image_dataset
    from wmproof.engine.models import LoadedModel
    from wmproof.engine.train import TensorData, accuracy, recipe_config, train_new_model
    from wmproof.oracles.local import LocalModelOracle
    from wmproof.protocol import Identity, keygen, mark, verify_private

    device = torch.device("cpu")
    results: dict[str, Any] = {
        "config": config.__dict__ | {"datasets": list(config.datasets)},
        "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(), "runs": [],
    }  # fmt: skip
    resume(results, results_path)
    done = {(r["dataset"], r["seed"]) for r in results["runs"]}
    for dataset in config.datasets:
        train = load_image_dataset(dataset, "train")
        test = load_image_dataset(dataset, "test")
        test_tensors = TensorData.from_numpy(test.images, test.labels, device)
        own = train.subset(config.owner_images)
        for seed in range(config.seeds):
            if (dataset, seed) in done:
                continue
            t0 = time.perf_counter()
            owner = Identity.generate("owner")
            mk, vk = keygen(owner, "adi-backdoor", items=config.items, num_classes=10, input_shape=(1, 28, 28))

            recipe = recipe_config(ARCH, seed=seed)
            clean, arguments, _ = train_new_model(ARCH, {}, own.images, own.labels, 10, recipe, device,
                                                  progress=False)  # fmt: skip

            def measure(module: Any, key: tuple[Any, Any] = (mk, vk), task_tensors: Any = test_tensors,
                        arguments: dict[str, Any] = arguments) -> dict:  # fmt: skip
                loaded = LoadedModel(module, ARCH, arguments, sha256="")
                report = verify_private(key[0], key[1], LocalModelOracle(loaded))
                return {
                    "test_accuracy": accuracy(module, task_tensors),
                    "trigger_accuracy": report.test.matches / report.test.n,
                    "verified": bool(report.verified),
                    "p_value": float(report.test.p_value),
                }

            scratch = mark(mk, embedding="from-scratch", train_images=own.images, train_labels=own.labels,
                           dataset_classes=10, architecture=ARCH, architecture_arguments={}, device=device,
                           config=recipe_config(ARCH, seed=seed, triggers_per_batch=2), min_epochs=recipe.epochs,
                           progress=False)  # fmt: skip
            pretrained = mark(mk, embedding="pretrained", train_images=own.images, train_labels=own.labels,
                              dataset_classes=10, base_model=LoadedModel(clean, ARCH, arguments, sha256=""),
                              device=device, progress=False,
                              config=recipe_config(ARCH, fine_tuning=True, epochs=20, seed=seed + 1,
                                                   triggers_per_batch=2))  # fmt: skip
            models = {"FromScratch": scratch.model, "PreTrained": pretrained.model}
            run_: dict[str, Any] = {
                "dataset": dataset, "seed": seed,
                "table1": {"No-WM": measure(clean), **{k: measure(m) for k, m in models.items()}},
                "marking_epochs": {"FromScratch": scratch.epochs, "PreTrained": pretrained.epochs},
                "fine_tuning": {}, "piracy": {},
            }  # fmt: skip

            context = AttackContext(device, seed=seed, task=dataset, progress=False)

            def attacked(module: Any, name: str, options: dict[str, Any] | None = None, *,
                         context: Any = context, arguments: dict[str, Any] = arguments) -> Any:  # fmt: skip
                victim = LoadedModel(copy.deepcopy(module), ARCH, arguments, sha256="")
                return run_attack(name, victim, context, options or {})

            for embedding, module in models.items():
                for name in FINE_TUNINGS:
                    result = attacked(module, name)
                    run_["fine_tuning"][f"{embedding}/{name}"] = measure(result.model)
            # Fig. 7: the pirate's key on the FromScratch model, then nothing, FTAL or RTAL
            for then in ("none", "ftal", "rtal"):
                result = attacked(scratch.model, "piracy", {"then": then})
                pirate = result.summary["pirate_key"]
                run_["piracy"][then] = {**measure(result.model), "ts_new_accuracy": pirate["trigger_accuracy"],
                                        "ts_new_verified": pirate["verdict"] == "verified"}  # fmt: skip
            # Table 2: transfer to the other data set; the trigger set read through the kept output layer
            result = attacked(scratch.model, "transfer", {"to": OTHER[dataset]})
            other_test = load_image_dataset(OTHER[dataset], "test")
            kept = result.verification_model()
            report = verify_private(mk, vk, LocalModelOracle(kept))
            run_["transfer"] = {
                "to": OTHER[dataset],
                "test_accuracy": result.summary["test_accuracy_after"],
                "trigger_accuracy": report.test.matches / report.test.n,
                "verified": bool(report.verified),
                "p_value": float(report.test.p_value),
                "epochs": result.summary.get("epochs"),
                "other_test_images": len(other_test),
            }
            run_["seconds"] = time.perf_counter() - t0
            results["runs"].append(run_)
            keep(results, results_path)
            shown = ", ".join(f"{k} {v['test_accuracy']:.4f}/{v['trigger_accuracy']:.2f}"
                              for k, v in run_["table1"].items())  # fmt: skip
            log(f"{dataset} seed {seed}: {shown} in {run_['seconds']:.0f} s")
    results["hoeffding"] = hoeffding_table(config.items)
    return results


def hoeffding_table(n: int) -> list[dict[str, Any]]:
    """Section 4.2: the matches out of n that Hoeffding's inequality needs for a null model (random labels,
    p0 = 1/10) to reach them with probability at most delta, beside the exact binomial threshold."""
    import math

    from wmproof.stats import binomial_sf, min_matches

    rows = []
    for delta in (Fraction(1, 20), Fraction(1, 1000), Fraction(1, 10**6)):
        p0 = 0.1
        hoeffding = math.ceil(n * (p0 + math.sqrt(math.log(1 / float(delta)) / (2 * n))))
        exact = min_matches(n, Fraction(1, 10), delta)
        rows.append({"delta": str(delta), "hoeffding": hoeffding, "exact": exact,
                     "exact_tail": float(binomial_sf(exact, n, Fraction(1, 10)))})  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------------ the report


def pm(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    m, s = mean_sd([scale * v for v in values])
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def count(cells: list[dict[str, Any]], key: str = "verified") -> str:
    return f"{sum(c[key] for c in cells)}/{len(cells)}"


def _mean(values: list[float]) -> float:
    return 100 * sum(values) / len(values)


def table1_reading(runs: list[dict[str, Any]], datasets: list[str]) -> str:
    """What Table 1 shows here, computed from the runs (the paper: both embeddings learn every trigger, and
    test accuracy moves by +0.39 / +0.23 points on CIFAR-10)."""
    parts = []
    for dataset in datasets:
        mine = [r["table1"] for r in runs if r["dataset"] == dataset]
        clean = _mean([t["No-WM"]["test_accuracy"] for t in mine])
        said = []
        for model in ("FromScratch", "PreTrained"):
            trigger = _mean([t[model]["trigger_accuracy"] for t in mine])
            cost = _mean([t[model]["test_accuracy"] for t in mine]) - clean
            said.append(f"{model} learned {trigger:.1f} % of the trigger set, test accuracy {cost:+.2f} points")
        unmarked = _mean([t["No-WM"]["trigger_accuracy"] for t in mine])
        parts.append(f"{dataset}: {'; '.join(said)} against No-WM, which answers {unmarked:.1f} % of the random "
                     "labels (chance is 10 %)")  # fmt: skip
    return (
        "Measured: " + ". ".join(parts) + ". The paper: 100 % of the trigger set for both, test accuracy "
        "+0.39 (FromScratch) and +0.23 (PreTrained) points on CIFAR-10, and 7.0 % for No-WM."
    )


def fig6_reading(runs: list[dict[str, Any]], datasets: list[str]) -> str:
    """Whether the paper's two findings of Fig. 6 hold in these runs, attack by attack."""
    parts = []
    for dataset in datasets:
        mine = [r["fine_tuning"] for r in runs if r["dataset"] == dataset]
        kept = {
            (e, n): _mean([f[f"{e}/{n}"]["trigger_accuracy"] for f in mine])
            for e in ("FromScratch", "PreTrained")
            for n in FINE_TUNINGS
        }
        scratch_wins = sum(kept["FromScratch", n] >= kept["PreTrained", n] for n in FINE_TUNINGS)
        pairs = [(e, layers) for e in ("FromScratch", "PreTrained") for layers in ("ll", "al")]
        rt_costs = sum(kept[e, f"rt{layers}"] <= kept[e, f"ft{layers}"] for e, layers in pairs)
        parts.append(f"{dataset}: FromScratch keeps at least as much as PreTrained under {scratch_wins} of 4 "
                     f"attacks, and RT* keeps no more than FT* in {rt_costs} of 4 pairs")  # fmt: skip
    return "Here (means over seeds): " + "; ".join(parts) + "."


def render(results: dict[str, Any], command: str) -> str:
    config = results["config"]
    lines = [
        "# Reproduction: Adi et al. 2018, backdoor watermarks (section 5), on MNIST and Fashion-MNIST",
        "",
        f"Made by `{command}` in {results['seconds'] / 60:.0f} min{machine_load(results)} on {results['device']} "
        f"({results['threads']} threads; torch {results['torch']}, Python {results['python']}); {config['seeds']} "
        "seed(s), mean ± sd over "
        "them, in percent. CIFAR-10, CIFAR-100 and ImageNet are not available here, so the paper's numbers are "
        "beside ours for the same protocol on another data set, never for the same one: what the MNIST analogue "
        "changes is said under each table.",
        "",
        f"Set-up: `{ARCH}` (two convolutions and a dense layer; the paper trains ResNet-18) on "
        f"train[0:{config['owner_images']:,}] with its recipe (Adam, one-cycle, 2 epochs); a committed key of "
        f"{config['items']} abstract images with random labels (5.2), k = 2 of them in every batch (5.1). The "
        "adversary's data are train[50,000:60,000]. Verdicts: wmproof's exact binomial test at alpha = 1e-6 "
        "(n = 100, p0 = 1/10: verified at 28 matches or more).",
        "",
        "## Table 1: functionality preserved (5.3)",
        "",
        "| data set | model | test accuracy | trigger accuracy | verified | marking epochs | paper (test / trigger) |",
        "|---|---|---|---|---|---|---|",
    ]
    runs = results["runs"]
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    for dataset in datasets:
        mine = [r for r in runs if r["dataset"] == dataset]
        for model in ("No-WM", "FromScratch", "PreTrained"):
            cells = [r["table1"][model] for r in mine]
            epochs = pm([r["marking_epochs"][model] for r in mine], 1.0) if model != "No-WM" else "–"
            lines.append(f"| {dataset} | {model} | {pm([c['test_accuracy'] for c in cells], digits=2)} | "
                         f"{pm([c['trigger_accuracy'] for c in cells])} | {count(cells)} | {epochs} | "
                         f"{PAPER_TABLE1[model]} |")  # fmt: skip
    lines += ["", table1_reading(runs, datasets), ""]
    lines += [
        "## Fig. 6: fine-tuning (5.4)",
        "",
        "![fine-tuning](adi-backdoor/fine-tuning.png)",
        "",
        "| data set | embedding | attack | test accuracy | trigger accuracy | verified |",
        "|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        mine = [r for r in runs if r["dataset"] == dataset]
        for embedding in ("FromScratch", "PreTrained"):
            for name in FINE_TUNINGS:
                cells = [r["fine_tuning"][f"{embedding}/{name}"] for r in mine]
                lines.append(f"| {dataset} | {embedding} | {name.upper()} | "
                             f"{pm([c['test_accuracy'] for c in cells], digits=2)} | "
                             f"{pm([c['trigger_accuracy'] for c in cells])} | {count(cells)} |")  # fmt: skip
    lines += [
        "",
        "The paper gives Fig. 6 as bars without numbers; its finding is that FromScratch keeps at least as much of "
        "the trigger set as PreTrained under every fine-tuning, and that the retraining variants (RT*) cost more "
        "of it than the fine-tuning ones (FT*). " + fig6_reading(runs, datasets),
        "",
        "## Fig. 7: ownership piracy (5.5)",
        "",
        "| data set | after the pirate's key | test accuracy | TS-Orig (owner) | owner verified | TS-New (pirate) | "
        "pirate verified |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        mine = [r for r in runs if r["dataset"] == dataset]
        for then in ("none", "ftal", "rtal"):
            cells = [r["piracy"][then] for r in mine]
            lines.append(f"| {dataset} | {'nothing' if then == 'none' else then.upper()} | "
                         f"{pm([c['test_accuracy'] for c in cells], digits=2)} | "
                         f"{pm([c['trigger_accuracy'] for c in cells])} | {count(cells)} | "
                         f"{pm([c['ts_new_accuracy'] for c in cells])} | "
                         f"{count(cells, 'ts_new_verified')} |")  # fmt: skip
    lines += [
        "",
        "The paper (Fig. 7, bars only): TS-Orig stays embedded and even improves after FTAL and RTAL, while TS-New "
        "drops sharply. Here the pirate marks PreTrained on its own 10,000 images (`wmproof attack piracy`).",
        "",
        "## Table 2: transfer learning (5.5)",
        "",
        "| from → to | test accuracy (new task) | trigger accuracy (kept output layer) | verified | paper |",
        "|---|---|---|---|---|",
    ]
    for dataset in datasets:
        cells = [r["transfer"] for r in runs if r["dataset"] == dataset]
        lines.append(f"| {dataset} → {cells[0]['to']} | {pm([c['test_accuracy'] for c in cells], digits=2)} | "
                     f"{pm([c['trigger_accuracy'] for c in cells])} | {count(cells)} | {PAPER_TABLE2} |")  # fmt: skip
    beside = []
    for dataset in datasets:
        mine = [r for r in runs if r["dataset"] == dataset]
        rtal = pm([r["fine_tuning"]["FromScratch/rtal"]["trigger_accuracy"] for r in mine])
        moved = pm([r["transfer"]["trigger_accuracy"] for r in mine])
        beside.append(f"{dataset}: {rtal} % after RTAL on its own task, {moved} % after transfer to "
                      f"{mine[0]['transfer']['to']}")  # fmt: skip
    lines += [
        "",
        "What the analogue changes: the paper transfers from CIFAR to STL-10, natural images whose classes are "
        "nearly all shared; MNIST and Fashion-MNIST share none. Measured beside it, the trigger accuracy of the "
        "same FromScratch models after RTAL (a new output layer, every layer retrained on the adversary's "
        "images of the same task) and after transfer (every layer retrained on the other task, the trigger "
        "set read through the kept original output layer): " + "; ".join(beside) + ".",
        "",
        "## 4.2: how many matches prove ownership",
        "",
        f"n = {results['config']['items']} items, a null model agreeing with each random label with probability "
        "p0 = 1/10. Hoeffding's inequality (the paper's argument) needs n (p0 + sqrt(ln(1/δ) / 2n)) matches; the "
        "exact binomial tail, which wmproof decides with (`wmproof.stats.min_matches`), needs fewer.",
        "",
        "| δ (alpha) | Hoeffding: matches needed | exact binomial: matches needed | exact tail at that count |",
        "|---|---|---|---|",
    ]
    for row in results["hoeffding"]:
        lines.append(f"| {row['delta']} | {row['hoeffding']} | {row['exact']} | {row['exact_tail']:.2e} |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], assets: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        mine = [r for r in runs if r["dataset"] == dataset]
        width = 0.2
        for j, embedding in enumerate(("FromScratch", "PreTrained")):
            for k, what in enumerate(("test_accuracy", "trigger_accuracy")):
                means, sds = [], []
                for name in FINE_TUNINGS:
                    m, s = mean_sd([100 * r["fine_tuning"][f"{embedding}/{name}"][what] for r in mine])
                    means.append(m)
                    sds.append(s)
                x = [i + (2 * j + k - 1.5) * width for i in range(len(FINE_TUNINGS))]
                ax.bar(x, means, width, yerr=sds, capsize=2,
                       label=f"{embedding}, {'test' if k == 0 else 'trigger'}")  # fmt: skip
        ax.set_xticks(range(len(FINE_TUNINGS)), [n.upper() for n in FINE_TUNINGS])
        ax.set_ylim(0, 105)
        ax.set_title(dataset, fontsize=9)
        ax.set_ylabel("accuracy (%)")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(assets / "fine-tuning.png", dpi=130)
    plt.close(fig)


def main() -> None:
    reproduce("adi_backdoor.py", "adi-backdoor", __doc__.split("\n\n")[0], CONFIGS, run, plot, render)


if __name__ == "__main__":
    main()

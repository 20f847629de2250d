"""Reproduce Le Merrer et al. (2020), "Adversarial frontier stitching", on MNIST with wmproof's scheme and
attacks, and write docs/reproductions/frontier-stitching.md with its plots.

What runs, for each architecture (mnist_mlp, mnist_cnn, mnist_irnn) and each seed:

1. the owner trains a model on MNIST train[0:T] (T = 60,000 in the paper's set-up, the `full`
   configuration; 10,000 in the `cpu` one);
2. fidelity (section 4.2): a key of |K| = 20 and of |K| = 100 kept items is built (Algorithm 1, FGSM l-inf
   at the experiment's epsilon) and embedded (fine-tuning at lr/10 until every item is learned); test
   accuracy before and after, epochs, seconds;
3. false positives (Fig. 6): keys of |K| = 100 built at epsilon in {0.025, 0.1, 0.25, 0.5} from the unmarked
   model, queried on independently trained unmarked models (the other seeds' models, same data, and, where the
   owner's data leaves a disjoint slice train[T:2T], one model per seed trained on it); a false positive is a
   verdict at p < 0.05 (at most 41 errors of 100);
4. Tables 1-3 on the |K| = 100 marked model: magnitude pruning, truncated SVD and overwriting (1,000 new
   adversaries of the attacker's held-out data, train[50,000:60,000] on CPU); key elements removed, whether the
   mark is still extracted (p < 0.05, and at wmproof's default alpha 1e-6), test accuracy after.

Every number is a mean and spread over seeds, measured on the full MNIST test set (10,000 images).

    python experiments/frontier_stitching.py                # the paper's set-up (full), 3 seeds: about 2 h on
                                                            # 2 CPU cores; writes docs/reproductions/
    python experiments/frontier_stitching.py --config cpu   # 10,000 images, 3 seeds: about 20 min, to /tmp
    python experiments/frontier_stitching.py --report-only  # re-render the report from its results.json

An interrupted run resumes: the finished (architecture, seed) runs are kept in the results.json.
"""

from __future__ import annotations

import copy
import math
import platform
import statistics
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

# experiments/reporting.py (the script's own folder)
from reporting import Groups, keep, log, machine_load, mean_sd, reproduce, resume

ARCHITECTURES = ("mnist_mlp", "mnist_cnn", "mnist_irnn")
EPSILONS = ("0.025", "0.1", "0.25", "0.5")
PRUNING = (0.25, 0.5, 0.75, 0.85)
#: Where Table 1 is run again with the paper's global pruning beside the per-layer one (seed 0; the IRNN's 20
#: epochs on 60,000 sequences are left out for time).
GLOBAL_PRUNING = ("mnist_mlp", "mnist_cnn")
SVD = (0.25, 0.5, 0.75, 0.9)
PAPER_ALPHA = Fraction(1, 20)

#: The paper's numbers (../shared/papers/le-merrer-frontier-stitching.txt). Tables 1-3 per architecture and
#: rate: (key elements removed of 100, their sd, extraction rate, accuracy after). The paper prunes the MLP
#: at 0.80 where our grid has 0.85, has no 0.85 row for the IRNN, and runs the SVD compressor (keras
#: compressor) on the MLP and the CNN only.
PAPER_PRUNING = {
    "mnist_cnn": {0.25: (0.053, 0.229, 1.000, 0.983), 0.5: (0.263, 0.562, 1.000, 0.984),
                  0.75: (3.579, 2.479, 1.000, 0.983), 0.85: (34.000, 9.298, 0.789, 0.936)},
    "mnist_irnn": {0.25: (14.038, 3.873, 1.000, 0.991), 0.5: (59.920, 6.782, 0.000, 0.987),
                   0.75: (84.400, 4.093, 0.000, 0.148)},
    "mnist_mlp": {0.25: (0.360, 0.700, 1.000, 0.951), 0.5: (0.704, 0.724, 1.000, 0.947),
                  0.75: (9.615, 4.392, 1.000, 0.915), 0.8: (24.438, 5.501, 1.000, 0.877)},
}  # fmt: skip


def global_rates(arch: str) -> list[float]:
    """The pruning rates of the seed-0 step: our grid, and the paper's rates it lacks (the MLP's 0.8)."""
    return sorted(set(PRUNING) | set(PAPER_PRUNING.get(arch, {})))


PAPER_SVD = {
    "mnist_cnn": {0.25: (1.867, 1.457, 1.000, 0.987), 0.5: (20.143, 4.721, 1.000, 0.885),
                  0.75: (69.643, 3.296, 0.000, 0.426), 0.9: (83.714, 3.989, 0.000, 0.255)},
    "mnist_mlp": {0.25: (0.385, 0.898, 1.000, 0.973), 0.5: (5.760, 2.697, 1.000, 0.966),
                  0.75: (48.423, 5.742, 0.077, 0.953), 0.9: (83.760, 6.346, 0.000, 0.157)},
}  # fmt: skip
PAPER_OVERWRITING = {
    "mnist_cnn": (17.842, 3.594, 1.000, 0.983),
    "mnist_irnn": (37.423, 3.931, 0.884, 0.989),
    "mnist_mlp": (27.741, 5.749, 1.000, 0.972),
}
#: Section 4 (set-up and 4.2): the Keras examples' accuracies, and the cost of marking.
PAPER_FIDELITY = {
    "mnist_mlp": "98.4 % before (10 epochs); marking costs 0.4 / 0.8 points (\\|K\\| = 20 / 100, 30 runs)",
    "mnist_cnn": (
        "99.3 % before (10 epochs); 0.14 points for \\|K\\| = 20 at ε = 0.25 (10 runs); \\|K\\| = 100: Fig. 4 only"
    ),
    "mnist_irnn": '99.18 % before (900 epochs); "nearly no degradation"',
}


def paper_attack(values: tuple[float, float, float, float] | None, rate: float | None = None) -> str:
    """One Table 1-3 cell of the paper: removed ± sd, extraction rate, accuracy after."""
    if values is None:
        return "not in the paper"
    removed, sd, extracted, accuracy = values
    at = f" (at {rate})" if rate is not None else ""
    return f"{removed:.1f} ± {sd:.1f} removed, extracted {100 * extracted:.0f} %, {100 * accuracy:.1f} %{at}"


DEFAULT_ALPHA = Fraction(1, 10**6)


@dataclass(frozen=True)
class Config:
    name: str
    seeds: int
    train: int  # T: the owner's training images
    epochs: dict[str, int]  # the owner's training epochs per architecture
    independent: int  # extra independent models per seed, on the disjoint slice
    #: The key's epsilon for fidelity and Tables 1-3, per architecture: the paper's 0.25 where Algorithm 1
    #: finds both kinds of adversaries there; where it does not (every image a true adversary), a run falls
    #: back to the largest ε of Fig. 6's grid at which it does, since smaller steps give keys that unmarked
    #: models pass (Fig. 6 rows). The cpu configuration's less trained MLP and IRNN start from 0.1.
    epsilon: dict[str, str]
    triggers_per_batch: int
    attacker_from: int  # the attacker's data: train[attacker_from:60000], its last 5,000 held out
    #: Overrides of the architectures' recipes for the owner's training (the Keras examples' optimisers).
    owner_recipe: dict[str, dict[str, Any]] = field(default_factory=dict)


TABLE_EPSILON = {"mnist_mlp": "0.1", "mnist_cnn": "0.25", "mnist_irnn": "0.1"}
PAPER_EPSILON = {arch: "0.25" for arch in ARCHITECTURES}  # section 4: FGSM at ε = 0.25 for every network
CONFIGS = {
    "cpu": Config("cpu", 3, 10_000, {"mnist_mlp": 5, "mnist_cnn": 2, "mnist_irnn": 10}, 1, TABLE_EPSILON, 8, 50_000),
    "smoke": Config("smoke", 2, 3_000, {"mnist_mlp": 1, "mnist_cnn": 1, "mnist_irnn": 2}, 1, TABLE_EPSILON, 8, 50_000),
    # The paper's set-up (section 4): owners train on all 60,000 images for the Keras examples' 10 epochs (the
    # IRNN's 900 are over pixel sequences, 784 steps; ours reads rows, 28 steps, and converges in tens). No
    # disjoint slice is left, so the independent models are the other seeds' owners (same data, other
    # initialisation and order), and the attacker's data overlaps the owner's, as the public MNIST set would.
    "full": Config(
        "full",
        3,
        60_000,
        {"mnist_mlp": 10, "mnist_cnn": 10, "mnist_irnn": 40},
        0,
        PAPER_EPSILON,
        8,
        50_000,
        # Keras mnist_mlp trains with RMSprop at 1e-3; mnist_cnn's Adadelta is not in the engine, and Adam at
        # 1e-3 (the recipe) is what the paper's text names ("a learning rate of 0.001"). mnist_irnn: the Keras
        # example's batch of 32, and a one-cycle schedule for the 900 epochs' slow rate (IRNN_RECIPES).
        {"mnist_mlp": {"optimizer": "rmsprop"}, "mnist_irnn": {"batch_size": 32, "schedule": "onecycle"}},
    ),
}

#: The bound on the epochs of the overwriting attack at the paper's learning rate (a tenth of the attack's
#: default, which learns the new key in under 20): it stops earlier once 99 % of the new key is learned.
OVERWRITING_PAPER_EPOCHS = 100

#: What the full configuration's IRNN recipe was chosen from: MNIST test accuracy of row-wise mnist_irnn owners
#: trained on the 60,000 images with Adam at 1e-3 (peak rate for one-cycle), measured on this CPU (one thread)
#: on 2026-12-02 (seed 0 unless a seed is named). The first full run (commit b2bdf20) trained 20 epochs at a
#: constant rate and batch 128: 97.79 ± 0.37 % over 3 seeds, 1.39 points below the paper's 99.18 %.
IRNN_RECIPES = (
    ("20 epochs, batch 128, constant rate", "97.79 ± 0.37 (3 seeds)"),
    ("20 epochs, batch 128, one-cycle", "98.58"),
    ("50 epochs, batch 128, one-cycle", "98.75"),
    ("50 epochs, batch 128, one-cycle at a 3e-3 peak", "98.64"),
    ("30 epochs, batch 64, one-cycle", "98.65"),
    ("20 epochs, batch 32, one-cycle", "98.74"),
    ("40 epochs, batch 32, one-cycle (chosen)", "98.88 (seed 0), 98.76 (seed 1)"),
)


def architecture_part(config: dict[str, Any], arch: str) -> dict[str, Any]:
    """The part of a configuration one architecture's runs depend on (a run's independent models are the other
    seeds' owners of its own architecture): the shared settings, and the per-architecture ones at ``arch``."""
    per_arch = {"epochs", "epsilon", "owner_recipe"}
    return {
        **{k: v for k, v in config.items() if k not in per_arch},
        **{k: config.get(k, {}).get(arch) for k in per_arch},
    }


# ------------------------------------------------------------------------------------------- the run


def run(config: Config, out: Path) -> dict[str, Any]:
    import torch

    from wmproof.attacks import get_attack
    from wmproof.attacks.base import AttackContext
    from wmproof.engine.data import load_image_dataset
    from wmproof.engine.device import resolve_device
    from wmproof.engine.models import LoadedModel
    from wmproof.engine.train import TensorData, accuracy, fit, predict_labels, recipe_config, train_new_model
    from wmproof.errors import WmproofError
    from wmproof.protocol import Identity, keygen, mark
    from wmproof.schemes import KeyGenContext, item_arrays

    device = resolve_device("auto")  # the GPU when there is one
    train = load_image_dataset("mnist", "train")
    test = load_image_dataset("mnist", "test")
    test_tensors = TensorData.from_numpy(test.images, test.labels, device)
    t = config.train
    own_x, own_y = train.images[:t], train.labels[:t]
    disjoint_x, disjoint_y = train.images[t : 2 * t], train.labels[t : 2 * t]
    attacker_x, attacker_y = train.images[config.attacker_from :], train.labels[config.attacker_from :]
    owner = Identity.generate("reproduction")
    results: dict[str, Any] = {
        "config": config.__dict__, "device": str(device), "torch": torch.__version__,
        "python": platform.python_version(), "threads": torch.get_num_threads(), "runs": [],
    }  # fmt: skip
    resume(results, out, Groups("arch", architecture_part, steps=("pruning_global", "overwriting_lr")))
    done = {(r["arch"], r["seed"]) for r in results["runs"]}

    def train_model(arch: str, x: np.ndarray, y: np.ndarray, seed: int) -> LoadedModel:
        module, arguments, _ = train_new_model(
            arch, {}, x, y, 10, recipe_config(arch, epochs=config.epochs[arch], seed=seed,
                                              **config.owner_recipe.get(arch, {})), device, progress=False,
        )  # fmt: skip
        return LoadedModel(module, arch, arguments, sha256="")

    def lr_of(arch: str) -> float:
        return recipe_config(arch).lr

    def key_matches(module: Any, items: list) -> np.ndarray:
        x, y = item_arrays(items)
        return predict_labels(module, torch.from_numpy(x).to(device)).cpu().numpy() == y

    def make_key(model: LoadedModel, items: int, epsilon: str, alpha: Fraction = PAPER_ALPHA):
        context = KeyGenContext(10, (1, 28, 28), {}, model=model, data=(own_x, own_y))
        return keygen(
            owner,
            "frontier-stitching",
            items=items,
            num_classes=10,
            input_shape=(1, 28, 28),
            params={"epsilon": epsilon},
            alpha=alpha,
            context=context,
        )

    def mark_pretrained(mk: Any, base: LoadedModel, arch: str, seed: int) -> Any:
        """Section 4.2: fine-tune at lr/10 with the key mixed into every batch until every item is learned."""
        return mark(
            mk,
            embedding="pretrained",
            train_images=own_x,
            train_labels=own_y,
            dataset_classes=10,
            base_model=base,
            config=recipe_config(arch, epochs=100, seed=seed, triggers_per_batch=config.triggers_per_batch),
            device=device,
            progress=False,
        )

    def seed_zero_marked(arch: str, base: LoadedModel) -> tuple[Any, Any, dict[str, Any]]:
        """Seed 0's owner ``base`` (trained again when the runs were kept) marked with a new key at the run's ε:
        the key, the marked model, and the accuracies that show the owner is the run's."""
        first = next(r for r in results["runs"] if r["arch"] == arch and r["seed"] == 0)
        mk, _ = make_key(base, 100, first["epsilon"])
        marked_module = mark_pretrained(mk, base, arch, 0).model
        return (
            mk,
            marked_module,
            {
                "owner_accuracy": accuracy(base.module, test_tensors),
                "run_owner_accuracy": first["accuracy"],
                "marked_accuracy": accuracy(marked_module, test_tensors),
                "epsilon": first["epsilon"],
            },
        )

    def attacked(name: str, mk: Any, marked: Any, seed: int, **options: Any) -> dict[str, Any]:
        """An attack on a copy of the marked model: key elements removed, extraction, accuracy after."""
        model = copy.deepcopy(marked)
        attack = get_attack(name)
        context = AttackContext(device=device, images=attacker_x, labels=attacker_y, seed=seed)
        chosen = attack.options({k: str(v) for k, v in options.items()})
        summary = attack.apply(model, context, **chosen)
        errors = int(100 - key_matches(model, mk.items).sum())
        return {
            "summary": {k: v for k, v in summary.items() if not isinstance(v, (list, dict))},
            "removed": errors,
            "extracted_005": errors <= 41,
            "extracted_1e-6": errors <= 26,
            "accuracy": accuracy(model, test_tensors),
        }

    results.setdefault("pruning_global", {})
    results.setdefault("overwriting_lr", {})
    for arch in ARCHITECTURES:
        seeds_done = all((arch, seed) in done for seed in range(config.seeds))
        global_done = arch not in GLOBAL_PRUNING or all(
            str(rate) in results["pruning_global"].get(arch, {}).get("layer", {}) for rate in global_rates(arch)
        )
        lr_done = arch in results["overwriting_lr"]
        if seeds_done and global_done and lr_done:
            continue
        if seeds_done:  # only the steps on seed 0 are left: its owner again (same data, recipe and seed)
            log(f"{arch}: training seed 0's owner again, for the steps on seed 0")
            owners, extra = [train_model(arch, own_x, own_y, 0)], []
        else:
            log(f"{arch}: training {config.seeds} owner models and {config.seeds * config.independent} independent "
                "ones")  # fmt: skip
            owners = [train_model(arch, own_x, own_y, seed) for seed in range(config.seeds)]
            extra = [
                train_model(arch, disjoint_x, disjoint_y, 100 + i) for i in range(config.seeds * config.independent)
            ]
        for seed, base in enumerate(owners):
            if (arch, seed) in done:
                continue
            run_: dict[str, Any] = {
                "arch": arch,
                "seed": seed,
                "accuracy": accuracy(base.module, test_tensors),
            }
            # --- Fig. 6: false positives of unmarked independent models, per epsilon
            independent = [m for j, m in enumerate(owners) if j != seed] + extra[
                seed * config.independent : (seed + 1) * config.independent
            ]
            run_["false_positives"] = {}
            for epsilon in EPSILONS:
                try:
                    mk, _ = make_key(base, 100, epsilon)
                except WmproofError as exc:
                    run_["false_positives"][epsilon] = {"unavailable": str(exc)}
                    continue
                errors = [int(100 - key_matches(m.module, mk.items).sum()) for m in independent]
                original = int(100 - key_matches(base.module, mk.items).sum())
                true_kept = int((~key_matches(base.module, mk.items)).sum())
                run_["false_positives"][epsilon] = {
                    "errors": errors,
                    "original_errors": original,
                    "true_adversaries_kept": true_kept,
                }
            # the tables' ε: the configuration's, or the largest below it at which a key could be made
            usable = [e for e in EPSILONS if "errors" in run_["false_positives"][e]]
            below = [e for e in usable if float(e) <= float(config.epsilon[arch])]
            if not below:
                raise WmproofError(f"{arch} seed {seed}: no ε of {EPSILONS} gives a key")
            run_["epsilon"] = max(below, key=float)
            # --- fidelity, |K| = 20 and 100
            run_["fidelity"] = {}
            marked_100 = None
            for size in (20, 100):
                mk, vk = make_key(base, size, run_["epsilon"])
                started = time.perf_counter()
                result = mark_pretrained(mk, base, arch, seed)
                seconds = time.perf_counter() - started
                # The control: the same fine-tuning (epochs, lr/10, data, seed) without the key, so that what
                # the mark costs is told apart from what more training of an unconverged model gains.
                control = copy.deepcopy(base.module)
                fit(
                    control,
                    TensorData.from_numpy(own_x, own_y, device),
                    recipe_config(arch, epochs=result.epochs, seed=seed, lr=lr_of(arch) / 10),
                    progress=False,
                )
                run_["fidelity"][str(size)] = {
                    "before": run_["accuracy"],
                    "after": accuracy(result.model, test_tensors),
                    "control": accuracy(control, test_tensors),
                    "epochs": result.epochs,
                    "seconds": seconds,
                    "key_accuracy": result.trigger_accuracy,
                }
                if size == 100:
                    marked_100 = (mk, result.model, base.arguments)
            log(
                f"{arch} seed {seed}: accuracy {run_['accuracy']:.4f} -> "
                f"{run_['fidelity']['100']['after']:.4f} (|K|=100, {run_['fidelity']['100']['epochs']} epochs)"
            )
            # --- Tables 1-3 on the |K| = 100 marked model
            mk, marked_module, _ = marked_100
            run_["pruning"] = {str(rate): attacked("prune", mk, marked_module, seed, rate=rate) for rate in PRUNING}
            run_["svd"] = {str(rate): attacked("svd", mk, marked_module, seed, rate=rate) for rate in SVD}
            run_["overwriting"] = attacked("overwrite", mk, marked_module, seed, images=len(attacker_x))
            run_["marked_accuracy"] = accuracy(marked_module, test_tensors)
            results["runs"].append(run_)
            keep(results, out)
        # --- Table 1 again on seed 0, pruning as the paper words it (4.3: the model's smallest weights, not
        # each layer's), beside the per-layer pruning, with a new key at the run's ε
        if not global_done:
            mk, marked_module, accuracies = seed_zero_marked(arch, owners[0])
            results["pruning_global"][arch] = {
                **accuracies,
                **{
                    scope: {
                        str(rate): attacked("prune", mk, marked_module, 0, rate=rate, scope=scope)
                        for rate in global_rates(arch)
                    }
                    for scope in ("layer", "global")
                },
            }
            log(f"{arch}: pruned per layer and globally")
            keep(results, out)
        # --- Table 3 again on seed 0 at the paper's learning rate (4.3: the attacker fine-tunes at a tenth of
        # training's), beside the attack's default, with a new key at the run's ε
        if not lr_done:
            mk, marked_module, accuracies = seed_zero_marked(arch, owners[0])
            default_lr = float(get_attack("overwrite").parameters["lr"].default)
            results["overwriting_lr"][arch] = {
                **accuracies,
                "epochs": OVERWRITING_PAPER_EPOCHS,
                "lr": {
                    str(lr): attacked("overwrite", mk, marked_module, 0, images=len(attacker_x), lr=lr, epochs=epochs)
                    for lr, epochs in ((default_lr, 20), (default_lr / 10, OVERWRITING_PAPER_EPOCHS))
                },
            }
            log(f"{arch}: overwritten at the attack's learning rate and at a tenth of it")
            keep(results, out)
    return results


# ------------------------------------------------------------------------------------------- the report


def pct(values: list[float]) -> str:
    m, s = mean_sd([100 * v for v in values])
    return f"{m:.2f} ± {s:.2f}"


def num(values: list[float], digits: int = 1) -> str:
    m, s = mean_sd([float(v) for v in values])
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def plots(results: dict[str, Any], assets: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for index, arch in enumerate(ARCHITECTURES):
        for tolerated, style, level in ((41, "-", "p < 0.05"), (26, "--", "α = 1e-6")):
            xs, ys = [], []
            for epsilon in EPSILONS:
                cells = [r["false_positives"][epsilon] for r in runs if r["arch"] == arch]
                errors = [e for c in cells if "errors" in c for e in c["errors"]]
                if errors:
                    xs.append(float(epsilon))
                    ys.append(100 * sum(e <= tolerated for e in errors) / len(errors))
            ax.plot(xs, ys, marker="o", linestyle=style, color=f"C{index}", label=f"{arch}, {level}")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks([float(e) for e in EPSILONS], EPSILONS)
    ax.set_xlabel("FGSM epsilon of the key (l-inf)")
    ax.set_ylabel("false positives (%)")
    ax.set_title("Independent unmarked models verified (|K| = 100)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(assets / "false-positives.png", dpi=110)

    fig, ax = plt.subplots(figsize=(6, 4))
    for index, arch in enumerate(ARCHITECTURES):
        table_epsilon = next((r["epsilon"] for r in runs if r["arch"] == arch and "epsilon" in r), "0.1")
        for epsilon, style in (("0.025", ":"), (table_epsilon, "-")):
            errors = [e for r in runs if r["arch"] == arch for e in r["false_positives"][epsilon].get("errors", [])]
            if errors:
                ax.hist(
                    errors,
                    bins=range(0, 101, 4),
                    histtype="step",
                    linestyle=style,
                    color=f"C{index}",
                    label=f"{arch}, ε {epsilon}",
                )
    ax.axvline(41.5, color="black", linewidth=1, label="41 errors: limit at p < 0.05")
    ax.axvline(26.5, color="grey", linewidth=1, linestyle="--", label="26 errors: limit at α = 1e-6")
    ax.set_xlabel("errors of an independent unmarked model on the 100 key items")
    ax.set_ylabel("models")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(assets / "independent-errors.png", dpi=110)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, table, rates, label in ((axes[0], "pruning", PRUNING, "pruning rate"), (axes[1], "svd", SVD, "SVD rate")):
        for arch in ARCHITECTURES:
            cells = [[r[table][str(rate)] for r in runs if r["arch"] == arch] for rate in rates]
            ax.errorbar(
                rates,
                [mean_sd([c["removed"] for c in cell])[0] for cell in cells],
                yerr=[mean_sd([c["removed"] for c in cell])[1] for cell in cells],
                marker="o",
                capsize=3,
                label=arch,
            )
        ax.axhline(41.5, color="black", linewidth=1, linestyle="--", label="41: limit at p < 0.05")
        ax.axhline(26.5, color="grey", linewidth=1, linestyle=":", label="26: limit at α = 1e-6")
        ax.set_xlabel(label)
        ax.set_ylabel("key elements removed (of 100)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(assets / "attacks.png", dpi=110)
    plt.close("all")


def render(results: dict[str, Any], command: str) -> str:
    runs = results["runs"]
    config = results["config"]

    def by(arch: str) -> list[dict[str, Any]]:
        return [r for r in runs if r["arch"] == arch]

    seeds = config["seeds"]
    lines = [
        "# Reproduction: frontier stitching (Le Merrer, Pérez, Trédan 2020)",
        "",
        "Le Merrer, Pérez, Trédan. *Adversarial frontier stitching for remote neural network watermarking*.",
        "Neural Computing and Applications 32, 2020 (arXiv:1711.01894).",
        "Scheme: `wmproof/schemes/frontier_stitching.py`;",
        "attacks: `wmproof/attacks/`. Regenerate this page (numbers and plots) with:",
        "",
        "```",
        command,
        "```",
        "",
        f"Configuration `{config['name']}`: {seeds} seeds; the owner trains on MNIST train[0:{config['train']:,}] "
        f"(epochs {', '.join(f'{a} {e}' for a, e in config['epochs'].items())}; the architectures' recipes: Adam "
        "1e-3, batch 128"
        + "".join(
            f", {arch} with {', '.join(f'{k} {v}' for k, v in o.items())}"
            for arch, o in config.get("owner_recipe", {}).items()
        )
        + "); keys use FGSM l-inf at ε = "
        + ", ".join(f"{'/'.join(sorted({r['epsilon'] for r in by(a)}))} ({a})" for a in ARCHITECTURES if by(a))
        + " (section *Differences*) and are embedded by fine-tuning at "
        f"lr/10 with {config['triggers_per_batch']} key items "
        "in "
        "every batch of 128, until every item is learned (bound 100 epochs); accuracies are on the full MNIST test "
        f"set (10,000 images); {results['seconds'] / 60:.0f} min of wall time{machine_load(results)} on device "
        f"`{results['device']}`"
        + (f" ({results['threads']} threads)" if "threads" in results else "")
        + f", torch {results['torch']}"
        + (f", Python {results['python']}" if "python" in results else "")
        + (f" ({results['shared']})" if "shared" in results else "")
        + ". Every cell is mean ± sd over "
        "seeds (over seeds × models for false positives). Extraction is the binomial test of section 3.3: "
        "errors ~ B(|K|, 1/2) under the null, 41 of 100 errors tolerated at p < 0.05 "
        "(`wmproof.stats`, exact), and 26 at wmproof's default α = 1e-6.",
        "",
        "## The paper's numbers",
        "",
        "The `paper` cells are transcribed from the paper's text (a copy is in ../shared/papers/; the values are "
        "`PAPER_*` in experiments/frontier_stitching.py). Its set-up (section 4): the Keras examples mnist_mlp "
        "(98.4 % after 10 epochs), mnist_cnn (99.3 % after 10) and mnist_irnn (99.18 % after 900), trained on all "
        "60,000 images with mini-batches of 128; keys of |K| = 100 made with FGSM at ε = 0.25 (Cleverhans), from "
        "test images then removed from the test set; marking by fine-tuning at a tenth of the training rate; "
        "tables over 30 markings per network (4.2); the mark found when fewer than 42 of 100 key elements are "
        "misclassified (p < 0.05); attacks are plausible while accuracy stays above 0.95 (footnote 3: about the "
        "3.5 % drop a trojaning paper tolerates). In the tables, *removed* is the paper's mean number of key "
        "elements erased, *extracted* its extraction success rate.",
        "",
        "## Fidelity (section 4.2)",
        "",
        "Accuracy before marking, after marking, and after the *control*: the same fine-tuning (as many epochs, "
        "lr/10, same data and seed) without the key. Where an owner model is not converged, fine-tuning alone "
        "raises its accuracy; the mark's cost is *after − control*.",
        "",
        "| model | before | \\|K\\| = 20: after | control | \\|K\\| = 100: after | control | epochs (20 / 100) "
        "| seconds (20 / 100) | paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arch in ARCHITECTURES:
        rs = by(arch)
        f20 = [r["fidelity"]["20"] for r in rs]
        f100 = [r["fidelity"]["100"] for r in rs]
        lines.append(
            f"| {arch} | {pct([r['accuracy'] for r in rs])} | {pct([f['after'] for f in f20])} | "
            f"{pct([f.get('control', math.nan) for f in f20])} | {pct([f['after'] for f in f100])} | "
            f"{pct([f.get('control', math.nan) for f in f100])} | "
            f"{num([f['epochs'] for f in f20])} / {num([f['epochs'] for f in f100])} "
            f"| {num([f['seconds'] for f in f20], 0)} / {num([f['seconds'] for f in f100], 0)} | "
            f"{PAPER_FIDELITY[arch]} |"
        )
    lines += [
        "",
        learned_sentence(runs),
        "",
        "## False positives on independently trained models (Fig. 6)",
        "",
        "Keys of |K| = 100 built from the *unmarked* owner model, queried on unmarked models that never saw them: "
        f"the {seeds - 1} other seeds' models (same data, other initialisation and order)"
        + (
            f" and {config['independent']} per seed trained on disjoint data "
            f"(train[{config['train']}:{2 * config['train']}]). "
            if config["independent"]
            else ". "
        )
        + "A false positive is a verdict at p < 0.05. *Original errors* are the unmarked owner model's own errors (it "
        "gets exactly the false adversaries right); *true kept* counts true adversaries among the 100 kept items "
        "(the cut-and-choose opens a random half of the 200 committed, so it is 50 ± 3.5, not exactly 50).",
        "",
        "![false positives](frontier-stitching/false-positives.png)",
        "![errors of independent models](frontier-stitching/independent-errors.png)",
        "",
        "| model | ε | independent models' errors | false positives, p < 0.05 | at α = 1e-6 | original errors "
        "| true kept |",
        "|---|---|---|---|---|---|---|",
    ]
    for arch in ARCHITECTURES:
        for epsilon in EPSILONS:
            cells = [r["false_positives"][epsilon] for r in by(arch)]
            done = [c for c in cells if "errors" in c]
            if not done:
                reason = cells[0]["unavailable"] if cells else "not run"
                lines.append(f"| {arch} | {epsilon} | n/a: {reason.split(': ', 1)[-1]} | | | | |")
                continue
            errors = [e for c in done for e in c["errors"]]
            fp = sum(e <= 41 for e in errors)
            fp6 = sum(e <= 26 for e in errors)
            note = "" if len(done) == len(cells) else f" ({len(cells) - len(done)} seed(s) had no key)"
            lines.append(
                f"| {arch} | {epsilon} | {num(errors)}{note} | {fp}/{len(errors)} ({100 * fp / len(errors):.0f} %) | "
                f"{fp6}/{len(errors)} | {num([c['original_errors'] for c in done])} | "
                f"{num([c['true_adversaries_kept'] for c in done])} |"
            )
    lines += [
        "",
        "## Attacks (Tables 1-3), on the |K| = 100 marked model",
        "",
        "![attacks](frontier-stitching/attacks.png)",
        "",
        "*Removed*: key elements the attacked model now gets wrong (the marked model got all 100 right). "
        "*Extracted*: runs where the mark is still found, at p < 0.05 (≤ 41 errors) and at α = 1e-6 (≤ 26).",
        "",
    ]
    for table, rates, title, paper in (
        (
            "pruning",
            PRUNING,
            "Table 1: magnitude pruning (the smallest |w| of every weight tensor set to zero)",
            PAPER_PRUNING,
        ),
        (
            "svd",
            SVD,
            "Table 2: truncated SVD (rate = fraction of singular values dropped per weight matrix)",
            PAPER_SVD,
        ),
    ):
        lines += [
            f"### {title}",
            "",
            "| model | rate | removed | extracted p < 0.05 | extracted 1e-6 | accuracy after | paper |",
            "|---|---|---|---|---|---|---|",
        ]
        for arch in ARCHITECTURES:
            for rate in rates:
                cells = [r[table][str(rate)] for r in by(arch)]
                lines.append(
                    f"| {arch} | {rate} | {num([c['removed'] for c in cells])} | "
                    f"{sum(c['extracted_005'] for c in cells)}/{len(cells)} | "
                    f"{sum(c['extracted_1e-6'] for c in cells)}/{len(cells)} | "
                    f"{pct([c['accuracy'] for c in cells])} | {paper_cell(paper, arch, rate)} |"
                )
        lines.append("")
    lines += [
        "### Table 3: overwriting (1,000 new FGSM adversaries of the attacker's held-out data, ε = 0.25)",
        "",
        "| model | removed | extracted p < 0.05 | extracted 1e-6 | accuracy after | epochs | paper |",
        "|---|---|---|---|---|---|---|",
    ]
    for arch in ARCHITECTURES:
        cells = [r["overwriting"] for r in by(arch)]
        lines.append(
            f"| {arch} | {num([c['removed'] for c in cells])} | "
            f"{sum(c['extracted_005'] for c in cells)}/{len(cells)} | "
            f"{sum(c['extracted_1e-6'] for c in cells)}/{len(cells)} | {pct([c['accuracy'] for c in cells])} | "
            f"{num([c['summary'].get('epochs', 0) for c in cells])} | {paper_attack(PAPER_OVERWRITING[arch])} |"
        )
    lines += ["", *global_pruning(results), *overwriting_rates(results), *reading(runs), "", *differences(results)]
    return "\n".join(lines) + "\n"


def global_pruning(results: dict[str, Any]) -> list[str]:
    """Table 1 again on seed 0, pruned per layer and over the whole model, beside the paper's row."""
    done = results.get("pruning_global", {})
    if not done:
        return []
    lines = [
        "### Table 1 again: pruning each layer, or the whole model (seed 0)",
        "",
        'The paper sets "25% to 85% of model weights with lowest absolute values" to zero (4.3): one cut over '
        "the model. Table 1 above prunes each weight tensor alone (`wmproof attack prune`, `scope=layer`, as "
        "Uchida et al.). Here seed 0's owner is trained again (same data, recipe and seed; its accuracy beside "
        "the run's shows it is the same model), marked with a new key at the run's ε, and pruned both ways "
        "(`scope=global`), at our grid's rates and at the paper's where ours lacks one (the MLP's 0.8).",
        "",
        "| model | owner accuracy (the run's) | rate | per layer: removed, accuracy | whole model: removed, "
        "accuracy | paper |",
        "|---|---|---|---|---|---|",
    ]
    for arch, cell in done.items():
        for rate in sorted(map(float, cell["layer"])):
            layer, whole = cell["layer"][str(rate)], cell["global"][str(rate)]
            lines.append(
                f"| {arch} | {100 * cell['owner_accuracy']:.2f} ({100 * cell['run_owner_accuracy']:.2f}) | {rate} | "
                f"{layer['removed']}{'' if layer['extracted_005'] else ' (lost)'}, {100 * layer['accuracy']:.1f} % | "
                f"{whole['removed']}{'' if whole['extracted_005'] else ' (lost)'}, {100 * whole['accuracy']:.1f} % "
                f"| {paper_cell(PAPER_PRUNING, arch, rate)} |"
            )
    return [*lines, ""]


def overwriting_rates(results: dict[str, Any]) -> list[str]:
    """Table 3 again on seed 0, at the attack's learning rate and at the paper's tenth of it."""
    done = results.get("overwriting_lr", {})
    if not done:
        return []
    lines = [
        "### Table 3 again: overwriting at the paper's learning rate (seed 0)",
        "",
        "The paper's attacker fine-tunes at a tenth of training's learning rate (4.3); `wmproof attack overwrite` "
        "defaults to training's (1e-3), which learns the new key in fewer epochs. Here seed 0's owner is trained "
        "again, marked with a new key at the run's ε, and overwritten both ways (at most 20 epochs at 1e-3, "
        f"{next(iter(done.values()))['epochs']} at 1e-4, each stopping once 99 % of the 1,000 new adversaries "
        "are learned).",
        "",
        "| model | owner accuracy (the run's) | lr | key elements removed | extracted | accuracy | epochs | new key "
        "learned | paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arch, cell in done.items():
        for lr, c in cell["lr"].items():
            lines.append(
                f"| {arch} | {100 * cell['owner_accuracy']:.2f} ({100 * cell['run_owner_accuracy']:.2f}) | {lr} | "
                f"{c['removed']} | {'yes' if c['extracted_005'] else 'no'} | {100 * c['accuracy']:.1f} % | "
                f"{c['summary']['epochs']} | {100 * c['summary']['new_key_accuracy']:.1f} % | "
                f"{paper_attack(PAPER_OVERWRITING[arch])} |"
            )
    return [*lines, ""]


def paper_cell(paper: dict[str, dict[float, tuple[float, float, float, float]]], arch: str, rate: float) -> str:
    """The paper's row at ``rate``, or at its nearest rate above 0.75 (it prunes the MLP at 0.80, not 0.85)."""
    rows = paper.get(arch)
    if not rows:
        return "not in the paper (SVD on the MLP and the CNN only)"
    if rate in rows:
        return paper_attack(rows[rate])
    near = [r for r in rows if r > 0.75]
    return paper_attack(rows[near[0]], near[0]) if near else "not in the paper"


def learned_sentence(runs: list[dict[str, Any]]) -> str:
    cells = [f for r in runs for f in r["fidelity"].values()]
    full = sum(f["key_accuracy"] == 1.0 for f in cells)
    return f"Keys learned completely (key accuracy 100 %) within the bound: {full} of {len(cells)} runs."


def reading(runs: list[dict[str, Any]]) -> list[str]:
    """What the tables say, computed from them (so it stays true when the run is repeated)."""
    out = ["## Reading", ""]
    for arch in ARCHITECTURES:
        rs = [r for r in runs if r["arch"] == arch]
        if not rs:
            continue
        facts = []
        for table, rates, what in (("pruning", PRUNING, "pruning"), ("svd", SVD, "SVD")):
            kept = []
            for rate in rates:  # the rates up to the first one at which some run loses the mark
                if not all(r[table][str(rate)]["extracted_005"] for r in rs):
                    break
                kept.append(rate)
            if kept:
                top = max(kept)
                accuracy = statistics.fmean(r[table][str(top)]["accuracy"] for r in rs)
                facts.append(f"survives {what} up to rate {top} in every run (accuracy then {100 * accuracy:.1f} %)")
            else:
                facts.append(f"does not survive {what} at rate {rates[0]} in every run")
        over = [r["overwriting"] for r in rs]
        facts.append(
            f"overwriting removes {statistics.fmean(o['removed'] for o in over):.0f} of 100 key elements "
            f"(extracted at p < 0.05 in {sum(o['extracted_005'] for o in over)} of {len(over)} runs)"
        )
        table_epsilon = CONFIGS["cpu"].epsilon[arch] if not rs[0].get("epsilon") else rs[0]["epsilon"]
        errors = [e for r in rs for e in r["false_positives"][table_epsilon].get("errors", [])]
        if errors:
            facts.append(
                f"at the tables' ε = {table_epsilon}, {sum(e <= 41 for e in errors)} of {len(errors)} independent "
                f"unmarked models pass at p < 0.05 and {sum(e <= 26 for e in errors)} at α = 1e-6"
            )
        cost = [f["after"] - f["control"] for r in rs for f in r["fidelity"].values() if "control" in f]
        if cost:
            facts.append(f"marking costs {100 * statistics.fmean(cost):+.2f} points of accuracy against the control")
        out.append(f"* **{arch}**: the mark " + "; ".join(facts) + ".")

    def rate(epsilon: str, tolerated: int) -> str:
        errors = [e for r in runs for e in r["false_positives"][epsilon].get("errors", [])]
        return f"{100 * sum(e <= tolerated for e in errors) / len(errors):.0f} %" if errors else "n/a"

    rates = "; ".join(f"ε = {e}: {rate(e, 41)} at p < 0.05, {rate(e, 26)} at α = 1e-6" for e in EPSILONS)
    out.append(
        f"* **False positives** of independent unmarked models, all architectures together: {rates}. Items a "
        "small step from training data are classified correctly by most models of the task, so the B(n, 1/2) "
        "null does not hold at small ε; per architecture, see the table above."
    )
    return out


#: Section 4: the Keras examples' test accuracies the paper reports for its unmarked networks.
PAPER_ACCURACY = {"mnist_mlp": 0.984, "mnist_cnn": 0.993, "mnist_irnn": 0.9918}


def fp_count(runs: list[dict[str, Any]], arch: str, epsilon: str) -> str:
    """Independent unmarked models of ``arch`` that pass keys made at ``epsilon`` (p < 0.05), as k/n."""
    errors = [e for r in runs if r["arch"] == arch for e in r["false_positives"][epsilon].get("errors", [])]
    return f"{sum(e <= 41 for e in errors)}/{len(errors)}" if errors else "no key"


def irnn_days(runs: list[dict[str, Any]]) -> float | None:
    """What the Keras mnist_irnn's 900 epochs over 784-pixel sequences would take here, from our measured
    marking time per epoch over 60,000 row sequences (28 steps): an epoch's cost grows with the steps."""
    fidelity = [r["fidelity"]["100"] for r in runs if r["arch"] == "mnist_irnn"]
    if not fidelity:
        return None
    per_epoch = statistics.fmean(f["seconds"] / f["epochs"] for f in fidelity)
    return per_epoch * (784 / 28) * 900 / 86_400


def differences(results: dict[str, Any]) -> list[str]:
    """Every difference from the paper, with the measurement that explains it (computed from the results, so
    that it stays true when the run is repeated; what is not measured is said to be so)."""
    from wmproof.stats import binomial_sf

    runs, config = results["runs"], results["config"]
    out = ["## Differences from the paper, and why", ""]

    # 1. the owner models against the Keras examples' accuracies
    rows, far = [], []
    for arch in ARCHITECTURES:
        rs = [r for r in runs if r["arch"] == arch]
        if not rs:
            continue
        mean = statistics.fmean(r["accuracy"] for r in rs)
        gap = 100 * (mean - PAPER_ACCURACY[arch])
        gain = statistics.fmean(r["fidelity"]["100"]["control"] - r["accuracy"] for r in rs)
        rows.append(
            f"{arch} {pct([r['accuracy'] for r in rs])} % against {100 * PAPER_ACCURACY[arch]:.2f} % "
            f"({gap:+.2f} points; the control's extra epochs at lr/10 add {100 * gain:+.2f})"
        )
        if abs(gap) > 0.5:
            far.append(arch)
    budget = (
        "the paper's 60,000 images" if config["train"] >= 60_000 else f"{config['train']:,} images (the paper: 60,000)"
    )
    out.append(
        f"* **Owner models.** Trained on {budget} for "
        f"{', '.join(f'{e} epochs ({a})' for a, e in config['epochs'].items())}: "
        + "; ".join(rows)
        + ". "
        + (
            "Every one is within 0.5 points of the paper's. "
            if not far
            else f"More than 0.5 points from the paper's: {', '.join(far)}; the control column measures how far "
            "from converged each is (what a few more epochs still add). "
        )
        + "The recipes differ where the Keras examples use what the engine has not: mnist_cnn trains with "
        "Adadelta there, with Adam at the paper's stated 1e-3 here; mnist_irnn reads the image as 784 single "
        "pixels for 900 epochs at RMSprop 1e-6 there, as 28 rows of 28 pixels here (same cell: 100 ReLU units, "
        "identity-initialised recurrent weights, Le et al. 2015)"
        + (f" ({irnn_days(runs):.1f} days on this device at our measured epoch time)." if irnn_days(runs) else ".")
        + (
            " The IRNN's recipe here was chosen by measurement (MNIST test accuracy in %, seed 0 unless said, "
            "Adam at 1e-3): " + "; ".join(f"{recipe}: {acc}" for recipe, acc in IRNN_RECIPES) + "."
            if "mnist_irnn" in config.get("owner_recipe", {})
            else ""
        )
        + (
            f" The runs of {', '.join(results['rerun'])} were made again when their settings changed; the other "
            "architectures' runs were kept (their settings did not change), and the wall time above counts both "
            "processes, the discarded runs included."
            if results.get("rerun")
            else ""
        )
    )

    # 2. the key's epsilon
    chosen = {arch: sorted({r["epsilon"] for r in runs if r["arch"] == arch}) for arch in ARCHITECTURES}
    at_paper = {
        arch: sum("errors" in r["false_positives"]["0.25"] for r in runs if r["arch"] == arch) for arch in ARCHITECTURES
    }
    seeds_of = {arch: sum(r["arch"] == arch for r in runs) for arch in ARCHITECTURES}
    fell_back = [a for a in ARCHITECTURES if seeds_of[a] and chosen[a] != ["0.25"]]
    out.append(
        "* **ε of the key.** The paper's FGSM step is 0.25. Algorithm 1 found both true and false adversaries "
        "at 0.25 for "
        + ", ".join(f"{at_paper[a]} of {seeds_of[a]} {a} owners" for a in ARCHITECTURES if seeds_of[a])
        + (
            "; every table uses the paper's 0.25. "
            if not fell_back
            else "; where it did not (at that step FGSM fools the model on every image, so no false adversary "
            "exists), the run's tables use the largest smaller ε of the grid that gives a key: "
            + ", ".join(f"{a} {'/'.join(chosen[a])}" for a in fell_back)
            + ". Smaller steps make keys that unmarked models pass (the Fig. 6 rows above), and a mark that "
            "survives an attack proves nothing where an unmarked model passes too: read each table beside the "
            "false-positive rate of its architecture at its ε (the *Reading* section gives both). "
        )
        + "False positives, against the paper's Fig. 6 (\"ε = 0.5 prevents the issue of false positives in all "
        'cases", at p < 0.05): here '
        + "; ".join(
            f"{a}: {fp_count(runs, a, '0.25')} at ε = 0.25, {fp_count(runs, a, '0.5')} at ε = 0.5"
            for a in ARCHITECTURES
            if seeds_of[a]
        )
        + ". "
        + "The paper makes its keys from test images and removes them from the test set; wmproof makes them "
        "from the owner's training images, so the test set is the full 10,000."
    )
    out += [
        "* **The key's split.** wmproof commits 2N items and opens a random half (cut-and-choose) before "
        "marking, so the kept key has 50 ± 3.5 true adversaries instead of exactly ℓ/2 = 50. The null model "
        "B(N, 1/2) is the paper's; the imbalance changes only how the original unmarked model scores (it gets "
        "the false ones right).",
        f'* **Embedding.** The paper fine-tunes "until the key is well classified"; wmproof mixes '
        f"{config['triggers_per_batch']} key items into every batch of 128 training images at lr/10 and stops "
        "when all are learned (at most 100 epochs, then an error).",
        "* **Overwriting** trains on the attacker's 5,000 images with the 1,000 new adversaries mixed in, at "
        "the attack's default learning rate (1e-3, the recipe's) until 99 % of them are learned (at most 20 "
        "epochs); the paper's attacker fine-tunes at a tenth of it, which needs several times more epochs "
        "(`wmproof/attacks/overwriting.py`).",
    ]

    # 3. the tables' rows against the paper's
    agree, disagree = 0, []
    for table, rates, paper in (("pruning", PRUNING, PAPER_PRUNING), ("svd", SVD, PAPER_SVD)):
        for arch in ARCHITECTURES:
            rs = [r for r in runs if r["arch"] == arch]
            rows_ = paper.get(arch, {})
            for rate in rates:
                theirs = rows_.get(rate) or next((rows_[r] for r in rows_ if r > 0.75 and rate > 0.75), None)
                if not rs or theirs is None:
                    continue
                ours = [r[table][str(rate)] for r in rs]
                kept = sum(c["extracted_005"] for c in ours) / len(ours)
                if (kept >= 0.5) == (theirs[2] >= 0.5):
                    agree += 1
                    continue
                accuracy = statistics.fmean(c["accuracy"] for c in ours)
                their_rate = rate if rate in rows_ else next(r for r in rows_ if r > 0.75)
                disagree.append(
                    f"{table} {rate} of the {arch}: extracted in {100 * kept:.0f} % of our runs at "
                    f"{100 * accuracy:.1f} % accuracy, in {100 * theirs[2]:.0f} % of the paper's at "
                    f"{100 * theirs[3]:.1f} %"
                    + (f" (the paper's row is at {their_rate})" if their_rate != rate else "")
                    + (" (ours below the paper's 0.95 plausibility bound)" if accuracy < 0.95 else "")
                )
    for arch in ARCHITECTURES:
        over = [r["overwriting"] for r in runs if r["arch"] == arch]
        if not over:
            continue
        kept = sum(o["extracted_005"] for o in over) / len(over)
        theirs = PAPER_OVERWRITING[arch]
        if (kept >= 0.5) == (theirs[2] >= 0.5):
            agree += 1
        else:
            disagree.append(
                f"overwriting of the {arch}: extracted in {100 * kept:.0f} % of our runs, in "
                f"{100 * theirs[2]:.0f} % of the paper's"
            )
    out.append(
        f"* **Tables 1-3 against the paper's.** {agree} of {agree + len(disagree)} rows with a paper value agree "
        "on whether the mark is still extracted in most runs"
        + ("." if not disagree else "; the others: " + "; ".join(disagree) + ".")
    )
    for arch, cell in results.get("overwriting_lr", {}).items():
        theirs = PAPER_OVERWRITING[arch]
        (fast, a), (slow, b) = cell["lr"].items()
        out.append(
            f"* **Overwriting's learning rate, measured ({arch}, seed 0).** At {fast}: {a['removed']} key elements "
            f"removed ({'extracted' if a['extracted_005'] else 'lost'}) at {100 * a['accuracy']:.1f} % after "
            f"{a['summary']['epochs']} epochs; at the paper's tenth, {slow}: {b['removed']} "
            f"({'extracted' if b['extracted_005'] else 'lost'}) at {100 * b['accuracy']:.1f} % after "
            f"{b['summary']['epochs']} epochs; the paper: {theirs[0]:.1f} removed, extracted in "
            f"{100 * theirs[2]:.0f} % of its runs."
        )
    for arch, cell in results.get("pruning_global", {}).items():
        # rate 0.75, and the paper's rates that our grid lacks (the MLP's 0.8)
        for rate in [0.75, *(r for r in sorted(map(float, cell["layer"])) if r not in PRUNING)]:
            theirs = PAPER_PRUNING[arch].get(rate)
            layer, whole = cell["layer"][str(rate)], cell["global"][str(rate)]
            out.append(
                f"* **Pruning scope, measured ({arch}, seed 0, rate {rate}).** Per layer: {layer['removed']} key "
                f"elements removed at {100 * layer['accuracy']:.1f} % accuracy; over the whole model, as the paper "
                f"words it: {whole['removed']} at {100 * whole['accuracy']:.1f} %"
                + (f"; the paper: {theirs[0]:.1f} at {100 * theirs[3]:.1f} %." if theirs else ".")
            )
    half = Fraction(1, 2)  # errors ~ B(100, 1/2): P[errors <= e] = P[matches >= 100 - e]
    out.append(
        "* **Statistics.** Tolerated errors come from the exact binomial tail (`wmproof.stats`): P[B(100, 1/2) "
        f"≤ 41] = {float(binomial_sf(59, 100, half)):.3f} < 0.05 (42 would give "
        f"{float(binomial_sf(58, 100, half)):.3f}: the off-by-one of a public reimplementation)."
    )
    return out


def main() -> None:
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    # the paper's set-up (60,000 images) is the committed report: 2 h on this CPU, minutes on a GPU
    reproduce("frontier_stitching.py", "frontier-stitching", __doc__.split("\n\n")[0], CONFIGS, run, plots, render,
              committed="full")  # fmt: skip


if __name__ == "__main__":
    main()

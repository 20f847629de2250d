"""Why the attacks of Figs. 5-7 give other numbers here than in the paper: three measurements on the stolen
models of the main reproduction's setting (Jia et al.'s CNN, the same keys, Mark and theft as
``experiments/feature_sharing.py``). Writes docs/reproductions/feature-sharing/attacks.json, which
``experiments/feature_sharing.py`` renders into its report.

The paper (section 4.3) names the attacks but none of their settings: which layer is pruned, on what data,
and how the fine-pruned model is fine-tuned. Per seed, for EWE and feature sharing, ID and OOD, the clean model
is marked and the protected model stolen (20,000 queries, soft labels, 3 epochs), then:

1. **fine-pruning's learning rate**: pruning rate 0 (fine-tuning alone) and 0.95, fine-tuned for the recipe's
   3 epochs on 10,000 clean images at Adam 1e-3 (the recipe's, what Fig. 6's rows use), 1e-4 and 1e-5;
2. **the pruned layer**: neuron pruning of the last convolution (``features.3``, 64 channels: Liu et al.'s
   choice in fine-pruning) beside the main rows' last hidden dense layer (``classifier.1``, 128 units);
3. **what hard labels carry**: of the thief's 20,000 queries, how many the protected API labels otherwise than
   the clean model it was marked from, and how many of those it labels the key's target class.

    python experiments/feature_sharing_attacks.py            # 2 seeds, about 40 minutes per seed on 2 cores
    python experiments/feature_sharing_attacks.py --seeds 1
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from feature_sharing import ALPHA, CONFIGS, PRUNE_RATES, ROBUST_SCHEMES, WATERMARKS, _entropy, judge_key
from reporting import log

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "reproductions" / "feature-sharing" / "attacks.json"
FINE_TUNE_RATES = (1e-3, 1e-4, 1e-5)
FINE_PRUNE_RATES = (0.0, 0.95)
CONV_LAYER = "features.3"


def save(results: dict[str, Any], out: Path, finished: bool = False) -> None:
    """Write a side experiment's results after each finished unit, so a stopped run keeps what it measured."""
    if finished:
        results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, sort_keys=True))


def side_main(doc: str, run: Callable[..., dict[str, Any]], out: Path, seeds: int) -> None:
    """The command line every side experiment shares: seeds, device, and a smoke configuration to /tmp."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cpu", help="smoke: a quick check, to /tmp")
    args = parser.parse_args()
    path = out if args.config == "cpu" else Path("/tmp/wmproof-feature-sharing") / out.name
    run(CONFIGS[args.config], args.seeds, args.device, path)
    log(f"wrote {path}; python experiments/feature_sharing.py --report-only renders it")


class OwnerSetting:
    """The main reproduction's owner, data and recipe (``experiments/feature_sharing.py``): the clean model of a
    seed, its key for a watermark and scheme, Mark and the theft, each as the main run does them, so that a side
    experiment measures the same models."""

    def __init__(self, config: Any, device_name: str, who: str) -> None:
        from wmproof.engine.data import load_image_dataset
        from wmproof.engine.device import resolve_device
        from wmproof.engine.train import TensorData
        from wmproof.protocol import Identity

        self.config, self.arch = config, config.arch
        self.device = resolve_device(device_name)
        self.owner_data = load_image_dataset("mnist", "train").subset(config.owner_images)
        self.fashion = load_image_dataset("fashion-mnist", "train")
        test = load_image_dataset("mnist", "test")
        self.test_tensors = TensorData.from_numpy(test.images, test.labels, self.device)
        self.owner = Identity.generate(who)

    def loaded(self, module: Any, arguments: dict[str, Any]) -> Any:
        from wmproof.engine.models import LoadedModel

        return LoadedModel(module, self.arch, arguments, sha256="")

    def clean(self, seed: int) -> Any:
        from wmproof.engine.train import recipe_config, train_new_model

        data = self.owner_data
        config = recipe_config(self.arch, seed=seed, epochs=self.config.clean_epochs)
        module, arguments, _ = train_new_model(
            self.arch, {}, data.images, data.labels, 10, config, self.device, progress=False
        )
        return self.loaded(module, arguments)

    def key(
        self, seed: int, watermark: str, scheme: str, clean: Any, extra: dict[str, Any] | None = None
    ) -> tuple[Any, Any]:
        """The main run's key of (seed, watermark): the same 2N images (seeded entropy), generated on a CPU copy
        of the clean model (the perturbation is a gradient; cuDNN's is not deterministic)."""
        from wmproof.protocol import keygen
        from wmproof.schemes import KeyGenContext

        config = self.config
        source = self.owner_data if watermark == "id" else self.fashion
        pair = {} if watermark == "id" else {"source_class": config.ood_pair[0], "target_class": config.ood_pair[1]}
        params = {"watermark": watermark, **pair, "perturbation": config.perturbation, **(extra or {})}
        context = KeyGenContext(
            10, (1, 28, 28), params, model=self.loaded(copy.deepcopy(clean.module).cpu(), clean.arguments),
            data=(source.images, source.labels), task_data=(self.owner_data.images, self.owner_data.labels),
        )  # fmt: skip
        return keygen(
            self.owner, scheme, items=config.items, num_classes=10, input_shape=(1, 28, 28), params=params,
            alpha=ALPHA, context=context, entropy=_entropy(f"{seed}/{watermark}"),
        )  # fmt: skip

    def protect(self, mk: Any, clean: Any, seed: int, triggers_per_batch: int | None = None) -> Any:
        from wmproof.engine.train import recipe_config
        from wmproof.protocol import mark

        k = self.config.triggers_per_batch if triggers_per_batch is None else triggers_per_batch
        marked = mark(
            mk, embedding="pretrained", train_images=self.owner_data.images, train_labels=self.owner_data.labels,
            dataset_classes=10, base_model=clean, device=self.device, progress=False,
            config=recipe_config(self.arch, epochs=self.config.mark_epochs, seed=10 + seed, triggers_per_batch=k),
            target_trigger_accuracy=1.0,
        )  # fmt: skip
        return self.loaded(marked.model, marked.arguments)

    def thief(self, seed: int) -> Any:
        from wmproof.attacks.base import AttackContext

        return AttackContext(device=self.device, seed=100 + seed, task="mnist", progress=False)

    def steal(self, protected: Any, seed: int) -> Any:
        from wmproof.attacks import run_attack
        from wmproof.oracles.local import LocalModelOracle

        options = {"queries": self.config.queries, "epochs": self.config.steal_epochs, "labels": "soft", "agreement": 0}
        result = run_attack("extract", LocalModelOracle(protected), self.thief(seed), options)
        return self.loaded(result.model, result.arguments)

    def judge(self, mk: Any, vk: Any, model: Any, seed: int) -> dict[str, Any]:
        return judge_key(mk, vk, model, seed, self.test_tensors)


def run(config: Any, seeds: int, device_name: str, out: Path) -> dict[str, Any]:
    from wmproof.attacks import run_attack
    from wmproof.attacks.base import AttackContext
    from wmproof.oracles.local import LocalModelOracle

    setting = OwnerSetting(config, device_name, "feature-sharing attacks")
    rows: list[dict[str, Any]] = []
    results = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "device": str(setting.device), "rows": rows,
               "config": {"arch": config.arch, "seeds": seeds, "fine_tune_rates": FINE_TUNE_RATES,
                          "fine_prune_rates": FINE_PRUNE_RATES, "conv_layer": CONV_LAYER}}  # fmt: skip

    def attacked(attack: str, stolen: Any, seed: int, options: dict[str, Any]) -> Any:
        context = AttackContext(device=setting.device, seed=200 + seed, task="mnist", progress=False)
        result = run_attack(attack, copy.deepcopy(stolen), context, options)
        return setting.loaded(result.model, result.arguments)

    for seed in range(seeds):
        clean = setting.clean(seed)
        queries = setting.thief(seed).attacker_data(config.queries).images
        clean_labels = LocalModelOracle(clean).query(queries).labels
        for watermark in WATERMARKS:
            for scheme in ROBUST_SCHEMES:
                mk, vk = setting.key(seed, watermark, scheme, clean)
                protected = setting.protect(mk, clean, seed)
                stolen = setting.steal(protected, seed)
                target = int(mk.items[0].label)
                api_labels = LocalModelOracle(protected).query(queries).labels
                changed = api_labels != clean_labels
                to_target = int((changed & (api_labels == target)).sum())
                where = {"seed": seed, "watermark": watermark, "scheme": scheme}
                hard = {**where, "measure": "hard labels", "target_class": target, "queries": int(len(queries)),
                        "changed": int(changed.sum()), "changed_to_target": to_target,
                        "stolen": setting.judge(mk, vk, stolen, seed)}  # fmt: skip
                rows.append(hard)
                for lr in FINE_TUNE_RATES:
                    for rate in FINE_PRUNE_RATES:
                        model = attacked("fine-prune", stolen, seed, {"rate": rate, "lr": lr})
                        rows.append({**where, "measure": "fine-prune", "lr": lr, "rate": rate,
                                     **setting.judge(mk, vk, model, seed)})  # fmt: skip
                for rate in PRUNE_RATES:
                    model = attacked("neuron-prune", stolen, seed, {"rate": rate, "layer": CONV_LAYER})
                    rows.append({**where, "measure": "neuron-prune conv", "rate": rate,
                                 **setting.judge(mk, vk, model, seed)})  # fmt: skip
                fine = [r for r in rows if r["measure"] == "fine-prune" and r["seed"] == seed
                        and r["watermark"] == watermark and r["scheme"] == scheme]  # fmt: skip
                log(
                    f"seed {seed} {watermark} {scheme}: {hard['changed']} queries relabelled "
                    f"({hard['changed_to_target']} to {target}); fine-prune wm "
                    + ", ".join(f"lr {r['lr']:g} rate {r['rate']}: {r['watermark_accuracy']:.2f}" for r in fine)
                )
                save(results, out)
    save(results, out, finished=True)
    return results


def main() -> None:
    side_main(__doc__, run, OUT, seeds=2)


if __name__ == "__main__":
    main()

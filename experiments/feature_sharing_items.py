"""Why the feature-sharing reproduction perturbs its items: the same MNIST experiment with raw and with
perturbed watermark items, for two out-of-distribution pairs. Writes
docs/reproductions/feature-sharing/items.json, which ``experiments/feature_sharing.py`` renders into its report.

The feature-sharing paper follows Jia et al.'s settings (its section 4), and Jia et al.'s code does not use the
source images as they are: it pushes them away from the target class on the clean model, then toward the
target class's hidden features (``perturbation=snnl``, :mod:`wmproof.schemes.source_target`). Per seed:

1. the owner trains a clean ``mnist_cnn`` on MNIST train[0:30,000] (the main reproduction's seed and recipe);
2. for each pair (Fashion-MNIST trousers -> 7, Jia et al.'s; sandals -> 1, wmproof's default for raw items) and
   each perturbation (``none``, ``snnl``): one key per scheme over the same 2N images, 100 kept items;
3. each scheme marks the clean model (until learned, at most 10 epochs), the protected model is stolen (20,000
   task queries, soft labels, 3 epochs), and the stolen model is judged; the clean model and a model stolen
   from it are judged too (what the key scores without any watermark).

    python experiments/feature_sharing_items.py              # 2 seeds, about 40 minutes per seed on 2 cores
    python experiments/feature_sharing_items.py --seeds 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from feature_sharing import ALPHA, SCHEMES, _entropy, judge_key, trigger_visibility
from reporting import log

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "reproductions" / "feature-sharing" / "items.json"
PAIRS = ((1, 7), (5, 1))
PERTURBATIONS = ("none", "snnl")
OWNER_IMAGES, ITEMS, MARK_EPOCHS, QUERIES, STEAL_EPOCHS = 30_000, 100, 10, 20_000, 3


def run(seeds: int, device_name: str) -> dict[str, Any]:
    import numpy as np

    from wmproof.attacks import run_attack
    from wmproof.attacks.base import AttackContext
    from wmproof.engine.data import load_image_dataset
    from wmproof.engine.device import resolve_device
    from wmproof.engine.models import LoadedModel
    from wmproof.engine.train import TensorData, recipe_config, train_new_model
    from wmproof.errors import UsageError
    from wmproof.oracles.local import LocalModelOracle
    from wmproof.protocol import Identity, keygen, mark
    from wmproof.schemes import KeyGenContext

    device = resolve_device(device_name)
    owner_data = load_image_dataset("mnist", "train").subset(OWNER_IMAGES)
    test = load_image_dataset("mnist", "test")
    fashion = load_image_dataset("fashion-mnist", "train")
    test_tensors = TensorData.from_numpy(test.images, test.labels, device)
    owner = Identity.generate("feature-sharing items")
    arch = "mnist_cnn"
    rows: list[dict[str, Any]] = []
    results = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "device": str(device), "rows": rows,
               "config": {"owner_images": OWNER_IMAGES, "items": ITEMS, "mark_epochs": MARK_EPOCHS,
                          "queries": QUERIES, "steal_epochs": STEAL_EPOCHS, "seeds": seeds}}  # fmt: skip

    def loaded(module: Any, arguments: dict[str, Any]) -> Any:
        return LoadedModel(module, arch, arguments, sha256="")

    def steal(victim: Any, seed: int) -> Any:
        context = AttackContext(device=device, seed=seed, task="mnist", progress=False)
        options = {"queries": QUERIES, "epochs": STEAL_EPOCHS, "labels": "soft", "agreement": 0}
        result = run_attack("extract", LocalModelOracle(victim), context, options)
        return loaded(result.model, result.arguments)

    def judge(mk: Any, vk: Any, model: Any, seed: int) -> dict[str, Any]:
        return judge_key(mk, vk, model, seed, test_tensors)

    results["visibility"] = []
    for seed in range(seeds):
        module, arguments, _ = train_new_model(
            arch, {}, owner_data.images, owner_data.labels, 10, recipe_config(arch, seed=seed), device, progress=False
        )
        clean = loaded(module, arguments)
        sevens = owner_data.images[np.flatnonzero(owner_data.labels == 7)[:200]]
        results["visibility"].append({"seed": seed, **trigger_visibility(clean.module, sevens, device)})
        log(f"seed {seed}: trigger visibility {results['visibility'][-1]}")
        innocent = steal(clean, 1000 + seed)
        for source, target in PAIRS:
            for perturbation in PERTURBATIONS:
                params = {"watermark": "ood", "source_class": source, "target_class": target}
                if perturbation != "none":
                    params["perturbation"] = perturbation
                where = {"seed": seed, "pair": [source, target], "perturbation": perturbation}
                for scheme in SCHEMES:
                    context = KeyGenContext(
                        10, (1, 28, 28), params, model=clean, data=(fashion.images, fashion.labels),
                        task_data=(owner_data.images, owner_data.labels),
                    )  # fmt: skip
                    mk, vk = keygen(
                        owner, scheme, items=ITEMS, num_classes=10, input_shape=(1, 28, 28), params=params,
                        alpha=ALPHA, context=context, entropy=_entropy(f"items/{seed}/{source}/{target}"),
                    )  # fmt: skip
                    if scheme == SCHEMES[0]:
                        rows.append({**where, "scheme": "none (clean model)", "stolen": judge(mk, vk, innocent, seed),
                                     "protected": judge(mk, vk, clean, seed)})  # fmt: skip
                    try:
                        marked = mark(
                            mk, embedding="pretrained", train_images=owner_data.images,
                            train_labels=owner_data.labels, dataset_classes=10, base_model=clean, device=device,
                            progress=False, target_trigger_accuracy=1.0,
                            config=recipe_config(arch, epochs=MARK_EPOCHS, seed=10 + seed, triggers_per_batch=8),
                        )  # fmt: skip
                    except UsageError as exc:  # Mark refuses a key the clean model already passes
                        rows.append({**where, "scheme": scheme, "refused": str(exc)})
                        log(f"seed {seed} {source}->{target} {perturbation} {scheme}: refused ({exc})")
                        continue
                    protected = loaded(marked.model, marked.arguments)
                    stolen = steal(protected, 100 + seed)
                    rows.append({**where, "scheme": scheme, "protected": judge(mk, vk, protected, seed),
                                 "stolen": judge(mk, vk, stolen, seed)})  # fmt: skip
                    r = rows[-1]
                    log(
                        f"seed {seed} {source}->{target} {perturbation} {scheme}: protected wm "
                        f"{r['protected']['watermark_accuracy']:.2f}, stolen wm {r['stolen']['watermark_accuracy']:.2f}"
                        f" (mean p {r['stolen']['mean_p']:.3f}, WDR {r['stolen']['wdr']:.2f})"
                    )
                    OUT.parent.mkdir(parents=True, exist_ok=True)
                    OUT.write_text(json.dumps(results, indent=1, sort_keys=True))
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    OUT.write_text(json.dumps(results, indent=1, sort_keys=True))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    run(args.seeds, args.device)
    log(f"wrote {OUT}; python experiments/feature_sharing.py --report-only renders it")


if __name__ == "__main__":
    main()

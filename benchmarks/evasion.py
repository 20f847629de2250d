"""Evasion through the adversary's service (Hitaj et al. 2019, "Have you stolen my model?"), measured.

For each seed: 7 owners each train an MNIST model (mnist_mlp) and mark it with their own 10-item key
(PreTrained, as `wmproof mark` does). The adversary serves
* an ensemble of the first 3, and of all 7, marked models (majority vote, random tie-break; section III);
* each model behind a trigger detector trained on its features, MNIST against Fashion-MNIST (section IV);
and every owner verifies through the API (Open Inference Protocol over loopback). Reported: the fraction of
each owner's trigger items still answered as committed (Hitaj et al.: about 34 % for 3 and 25.5 % for 7 on
MNIST with 10-item keys), how many verdicts flip from verified to rejected, and the clean test accuracy the
service keeps. Mean and spread over owners and seeds.

    python benchmarks/evasion.py                       # 3 seeds, about 4 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
from fractions import Fraction

import numpy as np
import torch

from wmproof.attacks.detector import train_detector
from wmproof.engine.data import load_image_dataset
from wmproof.engine.models import LoadedModel
from wmproof.engine.train import recipe_config, train_new_model
from wmproof.oracles.detector import DetectorGuard
from wmproof.oracles.ensemble import MajorityVote
from wmproof.oracles.local import LocalModelOracle
from wmproof.oracles.remote import RemoteOracle
from wmproof.oracles.server import InferenceServer
from wmproof.protocol import Identity, keygen, mark, verify_private
from wmproof.schemes import stack_inputs

ALPHA = Fraction(1, 1000)  # 10-item keys: verified when at least 6 of 10 match (p0 = 1/10)


def owners(seed: int, count: int, train, limit: int) -> list[tuple]:
    device = torch.device("cpu")
    small = train.subset(limit)
    made = []
    for i in range(count):
        model, args, _ = train_new_model(
            "mnist_mlp", {}, small.images, small.labels, 10, recipe_config("mnist_mlp", epochs=2, seed=seed * 100 + i),
            device, progress=False,
        )  # fmt: skip
        mk, vk = keygen(Identity.generate(f"owner {i}"), "adi-backdoor", items=10, num_classes=10,
                        input_shape=(1, 28, 28), alpha=ALPHA)  # fmt: skip
        base = LoadedModel(model, "mnist_mlp", args, f"{seed}-{i}")
        result = mark(
            mk, embedding="pretrained", train_images=small.images, train_labels=small.labels, dataset_classes=10,
            base_model=base, config=recipe_config("mnist_mlp", epochs=20, seed=seed * 100 + i, triggers_per_batch=2),
            device=device, progress=False,
        )  # fmt: skip
        loaded = LoadedModel(result.model, "mnist_mlp", args, f"{seed}-{i}-marked")
        made.append((mk, vk, loaded))
    return made


def through(oracle, made, test) -> dict[str, object]:
    with InferenceServer(oracle, "suspect") as server:
        remote = RemoteOracle(server.url, "suspect", batch_size=1000)
        fractions, flips = [], 0
        for mk, vk, _ in made:
            labels = np.array([item.label for item in mk.items])
            answered = remote.query(stack_inputs(mk.items)).labels
            fractions.append(float((answered == labels).mean()))
            flips += not verify_private(mk, vk, remote).verified
        accuracy = float((remote.query(test.images.astype(np.float32) / 255.0).labels == test.labels).mean())
    return {"fractions": fractions, "flipped": flips, "owners": len(made), "test_accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--limit-train", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    train = load_image_dataset("mnist", "train")
    test = load_image_dataset("mnist", "test").subset(2000)
    ood = load_image_dataset("fashion-mnist", "train").subset(args.limit_train)
    results: dict[str, list[dict]] = {"alone": [], "ensemble of 3": [], "ensemble of 7": [], "detector": []}
    for seed in args.seeds:
        made = owners(seed, 7, train, args.limit_train)
        locals_ = [LocalModelOracle(loaded) for _, _, loaded in made]
        results["alone"].append(through(locals_[0], made[:1], test))
        results["ensemble of 3"].append(through(MajorityVote(locals_[:3], seed=seed), made[:3], test))
        results["ensemble of 7"].append(through(MajorityVote(locals_, seed=seed), made, test))
        detector = train_detector(made[0][2], train.subset(args.limit_train).images, ood.images, seed=seed)
        guard = DetectorGuard(made[0][2], detector.detector, seed=seed)
        results["detector"].append(through(guard, made[:1], test))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"MNIST mnist_mlp, 10-item keys (verified when >= 6 of 10 match, alpha = 1/1000), seeds {args.seeds}")
    for name, rows in results.items():
        fractions = [f for r in rows for f in r["fractions"]]
        flipped = sum(r["flipped"] for r in rows)
        owners_ = sum(r["owners"] for r in rows)
        accuracy = [r["test_accuracy"] for r in rows]
        print(
            f"{name:<14} triggers answered as committed {100 * statistics.mean(fractions):5.1f} % "
            f"(sd {100 * statistics.pstdev(fractions):4.1f}, n = {len(fractions)} owners x seeds); "
            f"verdicts flipped {flipped}/{owners_}; test accuracy {statistics.mean(accuracy):.4f}"
        )


if __name__ == "__main__":
    main()

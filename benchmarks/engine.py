"""Engine throughput, measured side by side in one run (these machines are noisy: compare ratios).

Training: the engine's ``fit`` (data resident on the device, batches by index, k = 2 trigger items appended
per batch) against the reference implementations' style: a ``torch.utils.data.DataLoader`` over a
``TensorDataset`` that concatenates 2 random trigger items to every batch and moves each batch to the
device. Same model, same initial weights, same data, same optimiser; runs alternate A/B.

Evaluation: the engine's verification path (``LocalModelOracle.query`` -> ``predict_logits`` with its
batch plan) against a naive evaluation in batches of 1,000 under ``torch.no_grad``.

Targets (issue 3): on this CPU training is compute-bound, so the engine must cost nothing (ratio >= 0.97);
evaluation >= 3x naive. On a GPU the training ratio must be >= 3x.

    python benchmarks/engine.py                       # CPU: mnist_mlp and mnist_cnn
    python benchmarks/engine.py --device cuda --train-images 60000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from wmproof.engine.data import load_image_dataset
from wmproof.engine.device import resolve_device
from wmproof.engine.models import LoadedModel, build_model, normalise_arguments
from wmproof.engine.train import TensorData, TrainConfig, evaluation_plan, fit
from wmproof.oracles.local import LocalModelOracle
from wmproof.schemes.abstract_images import generate_abstract_image


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def triggers(n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    pairs = [generate_abstract_image(rng.bytes(32), 10, (1, 28, 28)) for _ in range(n)]
    return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def train_engine(arch, images, labels, t_images, t_labels, device) -> float:
    torch.manual_seed(0)
    model = build_model(arch).to(device)
    data = TensorData.from_numpy(images, labels, device)
    trig = TensorData.from_numpy(t_images, t_labels, device)
    sync(device)
    t0 = time.perf_counter()
    history = fit(
        model, data, TrainConfig(epochs=1, batch_size=128, seed=0, triggers_per_batch=2), triggers=trig, progress=False
    )
    sync(device)
    return history.images_seen / (time.perf_counter() - t0)


def train_reference(arch, images, labels, t_images, t_labels, device) -> float:
    torch.manual_seed(0)
    model = build_model(arch).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.from_numpy(images.copy()).float().div_(255)
    y = torch.from_numpy(labels)
    tx = torch.from_numpy(t_images.copy()).float().div_(255)
    ty = torch.from_numpy(t_labels)
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)
    model.train()
    seen = 0
    sync(device)
    t0 = time.perf_counter()
    for xb, yb in loader:
        pick = torch.randint(0, len(tx), (2,))
        xb = torch.cat((xb, tx[pick])).to(device)
        yb = torch.cat((yb, ty[pick])).to(device)
        loss = loss_fn(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(yb)
    sync(device)
    return seen / (time.perf_counter() - t0)


def eval_engine(model, arch, x_numpy) -> float:
    args = normalise_arguments(arch, {})
    oracle = LocalModelOracle(LoadedModel(model, arch, args, sha256="benchmark"))
    t0 = time.perf_counter()
    oracle.query(x_numpy)
    return len(x_numpy) / (time.perf_counter() - t0)


def eval_naive(model, x_numpy, device) -> float:
    x = torch.from_numpy(x_numpy)
    sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        labels = [model(x[i : i + 1000].to(device)).argmax(1).cpu() for i in range(0, len(x), 1000)]
    sync(device)
    torch.cat(labels)
    return len(x) / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="mnist_mlp,mnist_cnn")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train-images", type=int, default=12_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", dest="json_out", default=None, help="Also write the results here.")
    args = parser.parse_args()
    device = resolve_device(args.device)
    train = load_image_dataset("mnist", "train").subset(args.train_images)
    test = load_image_dataset("mnist", "test")
    t_images, t_labels = triggers()
    x_test = test.images.astype(np.float32) / 255.0
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{len(train)} training images, 10,000 test images, {args.repeats} alternating repeats"
    )
    results = {}
    ok = True
    for arch in args.arch.split(","):
        engine_tr, reference_tr, engine_ev, naive_ev = [], [], [], []
        warm = slice(0, 2048)  # first-call costs (thread pool, allocator) fall on neither side
        train_engine(arch, train.images[warm], train.labels[warm], t_images, t_labels, device)
        train_reference(arch, train.images[warm], train.labels[warm], t_images, t_labels, device)
        for _ in range(args.repeats):
            engine_tr.append(train_engine(arch, train.images, train.labels, t_images, t_labels, device))
            reference_tr.append(train_reference(arch, train.images, train.labels, t_images, t_labels, device))
        torch.manual_seed(0)
        model = build_model(arch).to(device).eval()
        eval_engine(model, arch, x_test[:500])  # warm-up
        eval_naive(model, x_test[:500], device)
        for _ in range(args.repeats + 2):
            engine_ev.append(eval_engine(model, arch, x_test))
            naive_ev.append(eval_naive(model, x_test, device))
        train_ratio = statistics.median(e / r for e, r in zip(engine_tr, reference_tr, strict=True))
        eval_ratio = statistics.median(e / n for e, n in zip(engine_ev, naive_ev, strict=True))
        batch, channels_last = evaluation_plan(model, device)
        results[arch] = {
            "train_images_per_s": {
                "engine": statistics.median(engine_tr),
                "dataloader": statistics.median(reference_tr),
            },
            "train_ratio": train_ratio,
            "eval_images_per_s": {
                "engine": statistics.median(engine_ev),
                "naive_batch_1000": statistics.median(naive_ev),
            },
            "eval_ratio": eval_ratio,
            "eval_plan": {"batch": batch, "channels_last": channels_last},
        }
        print(f"\n{arch}")
        print(
            f"  training   engine {statistics.median(engine_tr):9,.0f} img/s   DataLoader+cat "
            f"{statistics.median(reference_tr):9,.0f} img/s   ratio {train_ratio:.3f}  (runs: "
            + ", ".join(f"{e / r:.3f}" for e, r in zip(engine_tr, reference_tr, strict=True))
            + ")"
        )
        print(
            f"  evaluation engine {statistics.median(engine_ev):9,.0f} img/s   naive batch 1000 "
            f"{statistics.median(naive_ev):9,.0f} img/s   ratio {eval_ratio:.2f}  (plan: batch {batch}"
            f"{', channels-last' if channels_last else ''})"
        )
        target = 3.0 if device.type == "cuda" else 0.97
        if train_ratio < target:
            ok = False
            print(f"  !! training ratio below the {target} target")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"device": str(device), "torch": torch.__version__, "results": results}, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

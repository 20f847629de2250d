"""Which of the engine's GPU options pay: training images/s with each turned off or on, side by side.

The engine trains with bf16 autocast and fused Adam on CUDA (``TrainConfig.amp``, ``TrainConfig.fused``);
here each is turned off in turn, and channels-last weights and ``torch.compile`` (default mode, and
``reduce-overhead``, which replays the step as a CUDA graph) are turned on, one at a time. Every variant
trains the same model from the same weights on the same data: one warm-up epoch (compilation falls
there, and is reported apart), then one timed epoch, with 2 trigger items per batch as in marking.

    python benchmarks/gpu_options.py --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from wmproof.engine.data import load_image_dataset
from wmproof.engine.device import resolve_device
from wmproof.engine.models import build_model
from wmproof.engine.train import TensorData, fit, recipe_config
from wmproof.schemes.abstract_images import generate_abstract_images

VARIANTS = ("engine", "no fused optimizer", "no autocast", "channels-last", "compile", "compile reduce-overhead")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(arch: str, variant: str, data: TensorData, triggers: TensorData, device: torch.device) -> dict:
    config = dataclasses.replace(recipe_config(arch, epochs=1, seed=0), triggers_per_batch=2)
    if variant == "no fused optimizer":
        config = dataclasses.replace(config, fused=False)
    if variant == "no autocast":
        config = dataclasses.replace(config, amp=False)
    torch.manual_seed(0)
    model = build_model(arch).to(device)
    if variant == "channels-last":
        model = model.to(memory_format=torch.channels_last)
    if variant.startswith("compile"):
        model = torch.compile(model, mode="reduce-overhead" if "reduce" in variant else None)
    times = []
    for _ in range(2):  # warm-up (compilation), then the timed epoch
        sync(device)
        t0 = time.perf_counter()
        history = fit(model, data, config, triggers=triggers, progress=False)
        sync(device)
        times.append(time.perf_counter() - t0)
    return {
        "arch": arch,
        "variant": variant,
        "images_per_s": history.images_seen / times[1],
        "first_epoch_s": times[0],
        "epoch_s": times[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--arch", default="mnist_mlp,mnist_cnn,mnist_fast")
    parser.add_argument("--train-images", type=int, default=60_000)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    train = load_image_dataset("mnist", "train").subset(args.train_images)
    data = TensorData.from_numpy(train.images, train.labels, device)
    rng = np.random.default_rng(0)
    images, labels = generate_abstract_images([rng.bytes(32) for _ in range(100)], 10, (1, 28, 28))
    triggers = TensorData.from_numpy(images, labels, device)
    print(f"device {device}, torch {torch.__version__}; {len(train)} training images, 1 timed epoch per variant")
    rows = []
    for arch in args.arch.split(","):
        base = None
        for variant in VARIANTS:
            try:
                row = run(arch, variant, data, triggers, device)
            except Exception as exc:  # a variant torch cannot run here (compile without a compiler) is reported
                print(f"  {arch:<10} {variant:<24} failed: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            base = base or row["images_per_s"]
            rows.append(row)
            print(
                f"  {arch:<10} {variant:<24} {row['images_per_s']:>11,.0f} img/s  "
                f"{row['images_per_s'] / base:5.2f}x the engine  (first epoch {row['first_epoch_s']:.1f} s)"
            )
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"device": str(device), "torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()

"""Training the trigger detector of Hitaj et al. 2019 ("Have you stolen my model?", section IV).

The adversary holds a stolen model and clean in-distribution data, but not the owner's triggers. It trains a
small classifier on the model's penultimate features to separate clean inputs (its own training data) from
out-of-distribution ones (here Fashion-MNIST for an MNIST model: real images of another domain), and picks
the threshold that flags at most ``max_false_positive_rate`` of held-out clean inputs, so ordinary users
barely notice it. Abstract trigger images are out of distribution, so most of them get flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..oracles.detector import HIDDEN, Detector, penultimate_features


@dataclass(frozen=True)
class DetectorTraining:
    detector: Detector
    clean_false_positive_rate: float
    ood_detection_rate: float


def train_detector(
    loaded: Any,
    clean_images: np.ndarray,
    ood_images: np.ndarray,
    *,
    max_false_positive_rate: float = 0.01,
    epochs: int = 20,
    seed: int = 0,
    ood_name: str = "fashion-mnist",
) -> DetectorTraining:
    """Fit the detector on ``loaded``'s features of clean (label 0) and out-of-distribution (label 1) images
    (uint8, N x C x H x W); 20 % of each is held out to set the threshold and report the rates."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = next(loaded.module.parameters()).device

    def feats(images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(images.astype(np.float32) / 255.0).to(device)
        return penultimate_features(loaded.module, x).float()

    def split(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = rng.permutation(len(images))
        cut = int(0.8 * len(images))
        return images[order[:cut]], images[order[cut:]]

    clean_fit, clean_hold = split(clean_images)
    ood_fit, ood_hold = split(ood_images)
    x = torch.cat([feats(clean_fit), feats(ood_fit)])
    y = torch.cat([torch.zeros(len(clean_fit)), torch.ones(len(ood_fit))]).to(device)
    mean, std = x.mean(0), x.std(0) + 1e-6
    net = nn.Sequential(nn.Linear(x.shape[1], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1)).to(device)
    # Fold the feature standardisation into the first layer, so the saved detector takes raw features.
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    xs = (x - mean) / std
    for _ in range(epochs):
        order = torch.randperm(len(xs), generator=generator).to(device)
        for start in range(0, len(xs), 256):
            idx = order[start : start + 256]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(net(xs[idx]).squeeze(1), y[idx]).backward()
            optimizer.step()
    with torch.no_grad():
        w1 = net[0].weight / std
        b1 = net[0].bias - (net[0].weight * (mean / std)).sum(1)
        weights = {"l1.weight": w1, "l1.bias": b1, "l2.weight": net[2].weight, "l2.bias": net[2].bias}
        weights = {k: v.detach().cpu().clone() for k, v in weights.items()}
    probe = Detector(weights, 0.5, loaded.sha256, {})
    with torch.no_grad():
        clean_scores = probe.scores(feats(clean_hold).cpu()).numpy()
        ood_scores = probe.scores(feats(ood_hold).cpu()).numpy()
    threshold = float(np.quantile(clean_scores, 1.0 - max_false_positive_rate))
    fpr = float((clean_scores > threshold).mean())
    tpr = float((ood_scores > threshold).mean())
    info = {
        "ood": ood_name,
        "clean_false_positive_rate": round(fpr, 4),
        "ood_detection_rate": round(tpr, 4),
        "trained_on": {"clean": len(clean_fit), "ood": len(ood_fit)},
        "seed": seed,
    }
    return DetectorTraining(Detector(weights, threshold, loaded.sha256, info), fpr, tpr)

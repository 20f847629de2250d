"""A network that is not in wmproof's zoo: the owner's own, defined here and nowhere else.

A small all-convolutional classifier with batch normalisation and global average pooling (in the spirit of
Springenberg et al. 2015, "Striving for Simplicity: The All Convolutional Net"). Nothing in wmproof knows
it: a model file records ``own_network:SmallConvNet`` and its arguments, and wmproof builds it again only
for a user who runs ``--trust-module own_network`` with this folder on PYTHONPATH.
"""

from __future__ import annotations

from torch import nn


class SmallConvNet(nn.Module):
    def __init__(self, num_classes: int, input_shape: list[int], width: int = 24) -> None:
        super().__init__()
        channels = input_shape[0]

        def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(channels, width, 1),
            *block(width, 2 * width, 2),
            *block(2 * width, 2 * width, 1),
            *block(2 * width, 4 * width, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))

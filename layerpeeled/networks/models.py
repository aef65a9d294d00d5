"""Classifiers with one interface: ``features(x)`` (the penultimate layer the LPM peels off) and a
linear ``classifier`` with bias. VGG and ResNet follow the CIFAR-style definitions of
kuangliu/pytorch-cifar with the paper's two 4096-wide fully connected layers on VGG (SPEC §4)."""
from __future__ import annotations

import torch
from torch import nn


class PeeledNet(nn.Module):
    """A feature extractor followed by a linear classifier: logits = W h + b."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.features = features
        self.feature_dim = feature_dim
        self.classifier = nn.Linear(feature_dim, num_classes, bias=True)

    def forward(self, x):
        return self.classifier(self.features(x))

    def fix_classifier_to_etf(self, seed: int) -> None:
        """Hold the classifier weight at a simplex ETF with unit-norm rows (Yang et al. 2022): rows
        sqrt(K/(K-1)) P (e_k - 1/K) for a seeded random P with orthonormal columns; it no longer
        trains (nor decays). The bias still trains."""
        K, p = self.classifier.weight.shape
        if p < K:
            raise ValueError(f"a simplex ETF of {K} classes needs a feature dimension >= {K}, the model has {p}")
        gen = torch.Generator().manual_seed(seed)
        P = torch.linalg.qr(torch.randn(p, K, generator=gen, dtype=torch.float64))[0]
        etf = (K / (K - 1)) ** 0.5 * (P @ (torch.eye(K, dtype=torch.float64) - 1.0 / K)).T
        with torch.no_grad():
            self.classifier.weight.copy_(etf.to(self.classifier.weight.dtype))
        self.classifier.weight.requires_grad_(False)


VGG_CFG = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
}


def vgg(name: str, in_channels: int, num_classes: int, width: int = 4096) -> PeeledNet:
    layers, c = [], in_channels
    for v in VGG_CFG[name]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            c = v
    layers += [nn.Flatten(), nn.Linear(512, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
               nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
    return PeeledNet(nn.Sequential(*layers), width, num_classes)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet18(in_channels: int, num_classes: int) -> PeeledNet:
    layers = [nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
    c = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(c, cout, stride), BasicBlock(cout, cout, 1)]
        c = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return PeeledNet(nn.Sequential(*layers), 512, num_classes)


def small_cnn(in_channels: int, num_classes: int, width: int = 32, feature_dim: int = 128) -> PeeledNet:
    """A fast CPU model: three conv-BN-ReLU-pool stages and a fully connected feature layer."""
    def stage(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)]

    layers = stage(in_channels, width) + stage(width, 2 * width) + stage(2 * width, 4 * width)
    layers += [nn.Flatten(), nn.Linear(4 * width * 16, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True)]
    return PeeledNet(nn.Sequential(*layers), feature_dim, num_classes)


def mlp(in_channels: int, num_classes: int, hidden: int = 512, feature_dim: int = 128) -> PeeledNet:
    layers = [nn.Flatten(), nn.Linear(in_channels * 32 * 32, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
              nn.Linear(hidden, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True)]
    return PeeledNet(nn.Sequential(*layers), feature_dim, num_classes)


MODELS = {
    "cnn": small_cnn, "mlp": mlp, "resnet18": resnet18,
    "vgg11": lambda c, k: vgg("vgg11", c, k), "vgg13": lambda c, k: vgg("vgg13", c, k),
}


def build_model(name: str, in_channels: int, num_classes: int) -> PeeledNet:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](in_channels, num_classes)

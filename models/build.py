"""``build_model(config)``: one entry point from any family's config to an ``nn.Module``."""

from __future__ import annotations

from torch import nn

from models.cnn import CNN, CNNConfig
from models.mlp import MLP, MLPConfig
from models.resnet import ResNet, ResNetConfig
from models.seed import SeedNetConfig, build_seed_network
from models.user import UserModelConfig, build_user_model

ModelConfig = MLPConfig | CNNConfig | ResNetConfig | SeedNetConfig | UserModelConfig


def build_model(config: ModelConfig) -> nn.Module:
    """Map (N, 1, 28, 28) images to (N, 10) logits. Initial weights come from the global torch
    RNG (seed it for reproducibility), except the seed networks, which seed themselves."""
    if isinstance(config, MLPConfig):
        return MLP(config)
    if isinstance(config, CNNConfig):
        return CNN(config)
    if isinstance(config, ResNetConfig):
        return ResNet(config)
    if isinstance(config, SeedNetConfig):
        return build_seed_network(config)
    if isinstance(config, UserModelConfig):
        return build_user_model(config)
    raise ValueError(
        f"build_model needs an MLPConfig, CNNConfig, ResNetConfig or SeedNetConfig, got {config=}"
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def config_from_dict(arch: str, fields: dict) -> ModelConfig:
    """Inverse of ``dataclasses.asdict`` plus the ``arch`` class tag (checkpoints)."""
    families = (MLPConfig, CNNConfig, ResNetConfig, SeedNetConfig, UserModelConfig)
    by_arch = {c.arch: c for c in families}
    if arch not in by_arch:
        raise ValueError(f"arch must be one of {sorted(by_arch)}, got {arch=}")
    return by_arch[arch](**fields)

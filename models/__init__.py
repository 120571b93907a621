"""Network families for 28x28 grayscale images: dataclass configs and ``build_model``.

    from models import MLPConfig, CNNConfig, SeedNetConfig, build_model
    net = build_model(CNNConfig(n_layers=2, channels=32, batch_norm=True))  # (N,1,28,28) -> (N,10)

Families: ``mlp`` (``n_layers`` hidden layers of ``hidden_dim``), ``cnn`` (``n_layers`` conv
blocks starting at ``channels``), ``resnet`` (``n_layers`` stages with a residual block each),
and the tutorial's two seeded networks by name
(``SeedNetConfig(network="no_batch_norm" | "batch_norm")``), and a user's own network
(``UserModelConfig``, ``models.user``). Configs validate on construction
and raise ``ValueError`` naming the field and value. ``standalone(model, mean, std)`` turns a
trained network into an ``nn.Sequential`` of ``torch.nn`` layers that normalizes its own input
and needs nothing from this project (``ViewAverage``, test-time augmentation, wraps a whole
network and ships the same way). This package imports only torch.
"""

from models.blocks import ViewAverage
from models.build import ModelConfig, build_model, config_from_dict, count_parameters
from models.cnn import CNN, CNNConfig
from models.export import standalone
from models.mlp import MLP, MLPConfig
from models.resnet import ResNet, ResNetConfig
from models.seed import SEED_NETWORKS, SeedNetConfig
from models.user import UserModelConfig, UserModelError

__all__ = [
    "CNN",
    "CNNConfig",
    "MLP",
    "MLPConfig",
    "ModelConfig",
    "ResNet",
    "ResNetConfig",
    "SEED_NETWORKS",
    "SeedNetConfig",
    "UserModelConfig",
    "UserModelError",
    "ViewAverage",
    "build_model",
    "config_from_dict",
    "count_parameters",
    "standalone",
]

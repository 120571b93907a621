"""models/: every family maps (N, 1, 28, 28) to (N, 10); configs validate; seed nets are seeded."""

from __future__ import annotations

import pytest
import torch

from models import (
    CNNConfig,
    MLPConfig,
    ResNetConfig,
    SeedNetConfig,
    ViewAverage,
    build_model,
    count_parameters,
    standalone,
)
from models.blocks import VIEWS, Residual
from models.export import BLOCKS_MODULE, needs_blocks


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4])
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_output_shape(family, n_layers, batch_norm):
    if family == "mlp":
        config = MLPConfig(n_layers=n_layers, hidden_dim=32, batch_norm=batch_norm, dropout=0.2)
    else:
        config = CNNConfig(n_layers=n_layers, channels=4, batch_norm=batch_norm, dropout=0.2)
    model = build_model(config)
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    has_bn = any(
        isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d) for m in model.modules()
    )
    assert has_bn == batch_norm


class ArticleCNN(torch.nn.Module):
    """The seed article's hand-tuned CNN as its notes write it (004_*.txt)."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3, stride=1, padding=1)
        self.fc1, self.fc2, self.fc3 = (
            nn.Linear(128 * 3 * 3, 512),
            nn.Linear(512, 512),
            nn.Linear(512, 10),
        )
        self.bn = nn.ModuleList([nn.BatchNorm2d(32), nn.BatchNorm2d(64), nn.BatchNorm2d(128)])
        self.bn_fc1, self.bn_fc2 = nn.BatchNorm1d(512), nn.BatchNorm1d(512)
        self.dropout = nn.Dropout(0.4)


def test_the_article_cnn_is_a_point_of_the_cnn_family():
    from search.space import WARM_START, model_config

    ours = build_model(model_config(WARM_START))
    theirs = ArticleCNN()
    kinds = lambda m: sorted(  # noqa: E731
        (type(x).__name__, tuple(x.weight.shape)) for x in m.modules() if hasattr(x, "weight")
    )
    assert kinds(ours) == kinds(theirs)  # same layers, same shapes
    # Only the biases in front of BatchNorm differ: BatchNorm's shift makes them redundant.
    redundant = 32 + 64 + 128 + 512 + 512
    assert count_parameters(theirs) - count_parameters(ours) == redundant
    dropouts = [m.p for m in ours.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.4, 0.4]
    assert ours(torch.randn(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("head_layers", [0, 1, 2])
def test_cnn_head_layers_and_width(head_layers):
    model = build_model(CNNConfig(n_layers=1, channels=4, head_dim=24, head_layers=head_layers))
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == head_layers + 1
    assert all(m.out_features == 24 for m in linears[:-1]) and linears[-1].out_features == 10


@pytest.mark.parametrize("network", ["no_batch_norm", "batch_norm"])
def test_seed_networks_identical_across_builds(network):
    torch.manual_seed(1)
    a = build_model(SeedNetConfig(network))
    torch.manual_seed(2)  # the caller's seed must not matter: the network seeds itself
    b = build_model(SeedNetConfig(network))
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    assert a(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_seed_network_layout():
    plain, bn = (
        build_model(SeedNetConfig("no_batch_norm")),
        build_model(SeedNetConfig("batch_norm")),
    )
    linears = [m for m in plain if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(192, 120), (120, 60), (60, 10)]
    assert [type(m).__name__ for m in bn if "BatchNorm" in type(m).__name__] == [
        "BatchNorm2d",
        "BatchNorm1d",
    ]
    # Same seed, same shared layers: the first conv starts identical in both variants.
    assert torch.equal(plain[0].weight, bn[0].weight)


def test_seed_network_does_not_reset_callers_rng():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    build_model(SeedNetConfig("batch_norm"))
    assert torch.equal(torch.rand(1), expected)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: MLPConfig(n_layers=0), "n_layers"),
        (lambda: MLPConfig(hidden_dim=-3), "hidden_dim"),
        (lambda: CNNConfig(dropout=1.5), "dropout"),
        (lambda: CNNConfig(channels=2.5), "channels"),
        (lambda: CNNConfig(batch_norm="yes"), "batch_norm"),
        (lambda: CNNConfig(head_dim=0), "head_dim"),
        (lambda: CNNConfig(head_layers=5), "head_layers"),
        (lambda: SeedNetConfig("resnet"), "network"),
        (lambda: ResNetConfig(n_layers=4), "n_layers"),
        (lambda: ResNetConfig(channels=0), "channels"),
        (lambda: ResNetConfig(dropout=-0.1), "dropout"),
    ],
)
def test_invalid_config_names_field_and_value(make, field):
    with pytest.raises(ValueError, match=rf"\.{field} .*got {field}="):
        make()


def test_build_model_rejects_unknown_config():
    with pytest.raises(ValueError, match="build_model needs"):
        build_model({"arch": "mlp"})


@pytest.mark.parametrize(
    "config",
    [
        MLPConfig(n_layers=2, hidden_dim=8, batch_norm=True, dropout=0.2),
        CNNConfig(n_layers=2, channels=4, dropout=0.3, head_layers=2),
        SeedNetConfig("batch_norm"),
    ],
)
def test_standalone_is_plain_torch_normalizes_itself_and_trains(config, tmp_path):
    torch.manual_seed(0)
    inner = build_model(config).eval()
    plain = standalone(inner, mean=0.3, std=0.5)
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(plain(x), inner((x - 0.3) / 0.5), atol=1e-5)
    modules = {type(m).__module__.split(".")[0] for m in plain.modules()}
    assert modules == {"torch"}, "a class of ours would be imported when unpickled"
    assert list(plain.named_children())[0][0] == "normalize"
    torch.save(plain, tmp_path / "m.pth")
    loaded = torch.load(tmp_path / "m.pth", weights_only=False)
    loaded.train()  # an ordinary module: train mode, a step, and the normalization stays put
    optimizer = torch.optim.SGD(loaded.parameters(), lr=0.1)
    torch.nn.functional.cross_entropy(loaded(x), torch.tensor([0, 1, 2, 3])).backward()
    optimizer.step()
    assert loaded.normalize.weight.item() == 2.0
    assert loaded.normalize.bias.item() == pytest.approx(-0.6)
    assert not torch.allclose(loaded.eval()(x), plain(x))  # the rest did move


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_resnet_stages_pool_double_and_add_one_residual_block_each(n_layers):
    model = build_model(ResNetConfig(n_layers=n_layers, channels=4, dropout=0.1))
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    residuals = [m for m in model.modules() if isinstance(m, Residual)]
    assert len(residuals) == n_layers
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [4] + [w for i in range(n_layers) for w in [4 * 2 ** (i + 1)] * 3]
    assert model.head[-1].in_features == 4 * 2**n_layers
    assert ResNetConfig().batch_norm  # always: drop_last and the like follow it
    # x + body(x): a body that outputs zeros makes the block the identity.
    block = residuals[0]
    torch.nn.init.zeros_(block.body[-2].weight), torch.nn.init.zeros_(block.body[-2].bias)
    x = torch.randn(2, 8, 14, 14)
    assert torch.equal(block.eval()(x), x)


def test_a_standalone_resnet_names_only_torch_and_the_shipped_blocks(tmp_path):
    torch.manual_seed(0)
    inner = build_model(ResNetConfig(n_layers=2, channels=4)).eval()
    plain = standalone(inner, mean=0.3, std=0.5)
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(plain(x), inner((x - 0.3) / 0.5), atol=1e-5)
    modules = {type(m).__module__.split(".")[0] for m in plain.modules()}
    assert modules == {"torch", BLOCKS_MODULE}
    assert needs_blocks(plain) and not needs_blocks(standalone(build_model(CNNConfig()), 0, 1))
    # The layers are shared, not copied: the exported model is the trained one.
    assert plain.features[-1].body[0] is inner.features[-1].body[0]


class Tiny(torch.nn.Module):  # a network of a user's own (models.user)
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def test_standalone_ships_any_other_network_whole_after_its_normalize():
    net = Tiny()
    plain = standalone(net, mean=0.3, std=0.5)
    x = torch.rand(4, 1, 28, 28)
    assert list(dict(plain.named_children())) == ["normalize", "net"] and plain.net is net
    assert torch.allclose(plain(x), net((x - 0.3) / 0.5), atol=1e-5)


def moved(images: torch.Tensor, d: int, background: float) -> torch.Tensor:
    """``images`` with their content moved ``d`` pixels down and right (up and left for a
    negative ``d``), the uncovered edge filled with ``background``: by index, not by padding."""
    out = torch.full_like(images, background)
    if d > 0:
        out[..., d:, d:] = images[..., :-d, :-d]
    else:
        out[..., :d, :d] = images[..., -d:, -d:]
    return out


def test_view_average_is_the_mean_probability_over_six_views_in_eval_and_the_net_in_train():
    torch.manual_seed(0)
    net = Tiny()
    averaged = ViewAverage(net).eval()
    x = torch.rand(5, 1, 28, 28) - 0.4  # a normalized batch: its background is its minimum
    background = float(x.amin())
    views = [x, x.flip(3)]
    views += [moved(v, d, background) for v in (x, x.flip(3)) for d in (1, -1)]
    expected = torch.stack([net(v).softmax(1) for v in views]).mean(0)
    assert len(views) == VIEWS
    out = averaged(x)
    assert torch.allclose(out.exp(), expected, atol=1e-6)
    assert not torch.allclose(out.exp(), net(x).softmax(1), atol=1e-3)  # the views count
    assert torch.equal(averaged.train()(x), net(x))  # fine-tuning trains the network alone


def test_a_standalone_view_average_ships_around_the_normalized_network(tmp_path):
    torch.manual_seed(0)
    inner = build_model(CNNConfig(n_layers=1, channels=4, batch_norm=True)).eval()
    ours = ViewAverage(inner).eval()
    shipped = standalone(ours, mean=0.3, std=0.5)
    x = torch.rand(4, 1, 28, 28)
    x[..., :3, :] = 0.0  # raw pixels: a black border, as every Fashion-MNIST image has
    assert torch.allclose(shipped(x), ours((x - 0.3) / 0.5), atol=1e-5)
    assert {type(m).__module__.split(".")[0] for m in shipped.modules()} == {
        "torch",
        BLOCKS_MODULE,
    }
    assert needs_blocks(shipped) and shipped.views == VIEWS
    assert list(dict(shipped.net.named_children())) == ["normalize", "features", "head"]
    torch.save(shipped, tmp_path / "m.pth")
    assert torch.allclose(torch.load(tmp_path / "m.pth", weights_only=False)(x), shipped(x))

"""search/grid.py: grid files, RunBuilder's product, RunManager's table columns."""

from __future__ import annotations

import itertools
import json

import pytest

from search.grid import GridError, combinations, load_grid, run_table, with_defaults

# RunManager's columns, before one per run parameter (the tutorial's results table).
RUN_MANAGER = ["run", "epoch", "loss", "accuracy", "epoch duration", "run duration"]
SWEEP = {"lr": [0.01], "batch_size": [1000, 2000], "shuffle": [True, False]}


def write(tmp_path, content, name="grid.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_product_order_matches_runbuilder(tmp_path):
    grid = load_grid(write(tmp_path, SWEEP))
    expected = [dict(zip(SWEEP, v, strict=True)) for v in itertools.product(*SWEEP.values())]
    assert combinations(grid) == expected and len(expected) == 4


def test_yaml_grid(tmp_path):
    grid = load_grid(
        write(tmp_path, "network: [no_batch_norm, batch_norm]\nlr: [0.01]\n", "g.yaml")
    )
    assert [c["network"] for c in combinations(grid)] == ["no_batch_norm", "batch_norm"]


def test_defaults_fill_the_rest():
    params = with_defaults({"batch_size": 1000})
    assert params["optimizer"] == "adam" and params["network"] == "no_batch_norm"
    assert "network" not in with_defaults({"arch": "mlp"})


@pytest.mark.parametrize(
    "content, message",
    [
        ({"colour": [1]}, "unknown key 'colour'; allowed: lr, batch_size"),
        ({"lr": []}, "lr must be a non-empty list"),
        ({"lr": 0.01}, "lr must be a non-empty list"),
        ({"batch_size": [64.5]}, "batch_size values must be an integer, got 64.5"),
        ({"shuffle": ["yes"]}, "shuffle values must be true or false"),
        ({"network": ["resnet"]}, "network values must be one of"),
        ({"network": ["batch_norm"], "n_layers": [2]}, "excludes ['n_layers']"),
        ({"lr": [-1.0]}, "lr must be a positive number"),
        ("{not json", "not valid json"),
        ([1, 2], "must map parameter names to lists"),
    ],
)
def test_bad_grid_is_one_clear_error(tmp_path, content, message):
    with pytest.raises(GridError) as info:
        load_grid(write(tmp_path, content))
    assert message in str(info.value) and "grid.json" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_grid_file(tmp_path):
    with pytest.raises(GridError, match="absent.json: cannot be read"):
        load_grid(tmp_path / "absent.json")


def test_run_table_columns_and_order():
    rows = [
        {
            "run": 1,
            "epoch": 1,
            "loss": 0.9,
            "accuracy": 0.6,
            "epoch duration": 1.0,
            "run duration": 1.0,
            "lr": 0.01,
        },
        {
            "run": 2,
            "epoch": 1,
            "loss": 0.5,
            "accuracy": 0.8,
            "epoch duration": 1.0,
            "run duration": 1.0,
            "lr": 0.1,
        },
    ]
    table = run_table(rows, ["lr"])
    assert list(table.columns) == [*RUN_MANAGER, "lr"]
    assert table["run"].tolist() == [2, 1]

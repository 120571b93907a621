"""search/grid.py: grid files, RunBuilder's product, RunManager's table columns."""

from __future__ import annotations

import itertools
import json

import pytest

from search.grid import (
    MAX_GRID,
    GridError,
    combinations,
    grid_size,
    load_grid,
    run_number,
    run_table,
    with_defaults,
)
from tests.helpers import RUN_MANAGER

SWEEP = {"lr": [0.01], "batch_size": [1000, 2000], "shuffle": [True, False]}


def write(tmp_path, content, name="grid.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_product_order_matches_runbuilder(tmp_path):
    grid = load_grid(write(tmp_path, SWEEP))
    expected = [dict(zip(SWEEP, v, strict=True)) for v in itertools.product(*SWEEP.values())]
    assert list(combinations(grid)) == expected and len(expected) == 4
    assert [run_number(grid, c) for c in expected] == [1, 2, 3, 4]  # RunManager's run column
    assert grid_size(grid) == 4 and run_number(grid, {**expected[0], "lr": 0.5}) is None


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


def test_a_huge_grid_is_sized_from_its_lengths_and_refused(tmp_path):
    """10 keys x 10 values: 10**10 combinations; building them would exhaust memory."""
    keys = ["lr", "momentum", "weight_decay", "dropout", "batch_size"]
    keys += ["n_layers", "hidden_dim", "channels", "head_dim", "head_layers"]
    values = {
        "lr": [0.001 * (i + 1) for i in range(10)],
        "momentum": [0.05 * i for i in range(10)],
        "weight_decay": [0.0001 * i for i in range(10)],
        "dropout": [0.05 * i for i in range(10)],
    }
    grid = {k: values.get(k, list(range(1, 11))) for k in keys}
    with pytest.raises(GridError, match=r"10,000,000,000 combinations \(10x10x10"):
        load_grid(write(tmp_path, grid))
    assert grid_size(grid) == 10**10 > MAX_GRID
    last = {k: v[-1] for k, v in grid.items()}
    assert run_number(grid, last) == 10**10  # computed, not counted
    first_three = list(itertools.islice(combinations(grid), 3))
    assert [c["head_layers"] for c in first_three] == [1, 2, 3]


def test_a_binary_grid_file_is_one_line(tmp_path):
    path = tmp_path / "grid.json"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(GridError, match="not a text file"):
        load_grid(path)

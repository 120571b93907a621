"""search/network.py and models/user.py: a user's own network, as a class or a factory, its
searchable parameters found from its signature, checked once before anything is written; a
trial whose values make it fail ends FAIL and the study goes on; its champion, registered like
ours, loads with torch and mlflow alone in a fresh interpreter, in a directory without the
source file and with ``models`` and ``mynet`` packages of its own, and serves class names over
HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from data import CLASSES
from models.user import PREFIX, UserModelError, keywords, module_of
from search import network
from search.sweep import parameter
from search.viewers import serving
from tests.helpers import QUICK, THREADS, in_process

CLASS = '''
import torch
from torch import nn


class Net(nn.Module):
    """The course's 2-conv network, with a width and a dropout of its own."""

    def __init__(self, width: int = 6, dropout: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 5)
        self.conv2 = nn.Conv2d(width, 2 * width, 5)
        self.fc = nn.Linear(2 * width * 4 * 4, 60)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(60, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.out(self.drop(torch.relu(self.fc(x.flatten(1)))))
'''
FACTORY = '''
from torch import nn


def make(hidden: int = 32, depth: int = 1, *, act: str = "relu") -> nn.Module:
    """An MLP of ``depth`` hidden layers; its author refuses depth 3."""
    if depth > 2:
        raise ValueError(f"depth {depth} is too deep for this MLP")
    layers, width = [nn.Flatten()], 784
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU() if act == "relu" else nn.Tanh()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, 10))
'''


def source(where: Path, name: str, text: str) -> str:
    (where / name).write_text(textwrap.dedent(text))
    return str(where / name)


def test_a_class_and_a_factory_give_their_keyword_parameters(tmp_path):
    net = source(tmp_path, "mynet.py", CLASS)
    assert {k: (v.default, v.annotation) for k, v in keywords(f"{net}:Net").items()} == {
        "width": (6, "int"),
        "dropout": (0.0, "float"),
    }
    fac = source(tmp_path, "fac.py", FACTORY)
    assert list(keywords(f"{fac}:make")) == ["hidden", "depth", "act"]
    assert module_of(f"{fac}:make").__name__.startswith(PREFIX)  # never the user's own name
    model = network.load(f"{fac}:make")
    network.check(model, {})
    assert network.allowed(model)["hidden"](3.5) == "must be an integer"
    assert network.allowed(model)["act"]("tanh") is None and "n_layers" not in network.allowed(
        model
    )


BROKEN = [
    ("nofile.py:Net", "nofile.py does not exist"),
    ("mynet", "must be PATH.py:NAME or package.module:NAME"),
    ("bad.py:Net", "bad.py does not import (ModuleNotFoundError: No module named"),
    ("mynet.py:Nope", "mynet.py has no class or function Nope"),
    ("shape.py:Net", "maps a (2, 1, 28, 28) batch to (2, 7), not (2, 10) logits"),
    ("clash.py:Net", "its keyword parameter lr has the name of a training parameter"),
    ("nodefault.py:Net", "its keyword parameter width has no default: give it in --space"),
]
FILES = {
    "mynet.py": CLASS,
    "bad.py": "import nonexistent_package_xyz\n",
    "shape.py": "import torch\nNet = lambda: torch.nn.Sequential(torch.nn.Flatten(), "
    "torch.nn.Linear(784, 7))\n",
    "clash.py": "import torch\ndef Net(lr: float = 0.1):\n    return torch.nn.Linear(784, 10)\n",
    "nodefault.py": CLASS.replace("width: int = 6", "width: int"),
}


@pytest.mark.parametrize(("ref", "message"), BROKEN)
def test_a_network_that_cannot_be_used_is_one_line_exit_2_nothing_written(in_tmp, ref, message):
    for name, text in FILES.items():
        source(in_tmp, name, text)
    before = sorted(p.name for p in in_tmp.iterdir())
    done = in_process(["--model", ref, *QUICK], in_tmp)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: --model {ref}: ") and message in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert sorted(p.name for p in in_tmp.iterdir()) == before


def test_a_file_value_is_checked_by_the_networks_annotation(tmp_path):
    model = network.load(source(tmp_path, "mynet.py", CLASS) + ":Net")
    assert network.allowed(model)["width"](6.5) == "must be an integer"
    network.check(model, {"width": parameter({"values": [8, 12]}, "width")})  # builds at 8


def test_a_trial_whose_values_break_the_network_fails_with_the_reason_and_the_study_goes_on(
    in_tmp,
):
    source(in_tmp, "fac.py", FACTORY)
    (in_tmp / "space.yaml").write_text(
        "method: random\nparameters:\n  depth: {values: [1, 3]}\n  optimizer: {value: adam}\n"
    )
    args = ["--model", "fac.py:make", "--space", "space.yaml", "--trials", "4", *QUICK]
    done = in_process(args, in_tmp)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="fashion-mnist", storage="sqlite:///optuna.db").trials
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert failed and all(t.params["depth"] == 3 for t in failed)
    assert all("depth 3 is too deep for this MLP" in t.user_attrs["cannot_run"] for t in failed)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4 and {t.params["depth"] for t in finished} == {1}


USE = """
import json, sys
import mlflow, torch
model = mlflow.pytorch.load_model("models:/mine@champion").eval()
logits = model(torch.rand(3, 1, 28, 28))
ours = sorted(m for m in sys.modules if m.split(".")[0] in ("models", "mynet", "search", "data"))
print(json.dumps({"shape": list(logits.shape), "ours": ours,
                  "net": type(model.net).__module__}))
"""


def test_a_user_networks_champion_loads_and_serves_without_its_source(tmp_path):
    """One tracked run of ``--model mynet.py:Net --space``, then, in another directory without
    mynet.py and with ``models`` and ``mynet`` packages that refuse to be imported: the
    champion in a fresh interpreter (``.eval()``, logits), and ``mlflow models serve`` over
    HTTP answering class names; its keyword values and source hash are in MLflow."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    source(work, "mynet.py", CLASS)
    (work / "space.yaml").write_text(
        "parameters:\n  width: {values: [4, 8]}\n  dropout: {min: 0.0, max: 0.3}\n"
    )
    uri = f"sqlite:///{work / 'mlflow.db'}"
    tracked = [a for a in QUICK if a != "--no-mlflow"] + ["--tracking-uri", uri]
    args = ["--model", "mynet.py:Net", "--space", "space.yaml", "--trials", "2", *tracked]
    done = in_process([*args, "--final-epochs", "1", "--registered-model", "mine"], work)
    assert done.returncode == 0, done.stderr
    (work / "mynet.py").unlink()
    for name in ("models", "mynet"):
        (elsewhere / name).mkdir()
        (elsewhere / name / "__init__.py").write_text(f"raise ImportError('the user\\'s {name}')")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(elsewhere)}
    env["OMP_NUM_THREADS"] = str(THREADS)
    loaded = subprocess.run(
        [sys.executable, "-c", USE], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr
    result = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert result["shape"] == [3, 10] and result["ours"] == []
    assert result["net"].startswith(PREFIX)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    served = ["models", "serve", "-m", "models:/mine@champion", "--env-manager", "local"]
    with serving("mlflow", served, "/ping", env=env, cwd=elsewhere, timeout=180) as base:
        request = urllib.request.Request(
            f"{base}/invocations",
            data=json.dumps({"inputs": [[[[0.5] * 28] * 28]] * 2}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            rows = json.loads(response.read())["predictions"]
    assert len(rows) == 2 and all(r["class_name"] == CLASSES[r["class_index"]] for r in rows)
    version = MlflowClient(uri).get_model_version_by_alias("mine", "champion")
    assert version.tags["model"] == "mynet.py:Net" and len(version.tags["model_sha256"]) == 64
    assert set(json.loads(version.tags["model_params"])) == {"width", "dropout"}


def test_a_resume_with_another_space_or_network_is_refused_in_one_line(in_tmp):
    source(in_tmp, "fac.py", FACTORY)
    (in_tmp / "a.yaml").write_text("parameters:\n  depth: {values: [1, 2]}\n")
    (in_tmp / "b.yaml").write_text("parameters:\n  depth: {values: [1]}\n")
    first = ["--model", "fac.py:make", "--space", "a.yaml", "--trials", "1", *QUICK]
    assert in_process(first, in_tmp).returncode == 0
    other = in_process([*first[:3], "b.yaml", *first[4:]], in_tmp)
    assert other.returncode == 2
    assert (
        "was created with another range for depth (values [1, 2]); this run gives values [1]"
        in (other.stderr)
    )
    ours = in_process(["--trials", "1", *QUICK], in_tmp)
    assert ours.returncode == 2 and "--model fac.py:make; this run asks for --model (our" in (
        ours.stderr
    )
    with pytest.raises(UserModelError):
        keywords(str(in_tmp / "gone.py") + ":make")

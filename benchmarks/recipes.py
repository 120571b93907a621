"""Which training recipe for the trials and the final fit? The article's CNN under each, one run.

    python -m benchmarks.recipes [--epochs 5 10 20] [--only NAME ...] [--network JSON] [--seed N]

Trains the seed article's CNN (3 conv blocks 32/64/128, fc 1152-512-512 with BatchNorm and
dropout 0.4) from one seed (``--seed``, default 0) with the project's trainer on all 60,000
labelled images, once per recipe and length, in the precision ``--precision`` picks (as
``search.run``'s: bf16 where the CPU has it), and prints the test accuracy (scored in fp32; for
a recipe with crop/flip also averaging 6 views, as the product scores such a champion,
``models.ViewAverage``) and seconds of each: the article's fixed learning rate, one-cycle and
cosine schedules, augmentation (random crop +-2 px and horizontal flip on the device), AdamW,
and label smoothing. These figures chose the search space's schedules and the final fit's
recipe by length (``search.recipe``). One after the other, never at once. ``--network
'{"n_layers": 2, "channels": 24, "batch_size": 256}'`` trains another point of the space under
the same recipes (model keys and ``batch_size`` replace the article's). Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from data import load_splits
from models import ViewAverage
from search import precision, recipe
from search.champion import served_views
from search.limits import Limits
from search.space import ARTICLE, RECIPE, spec_from_params
from search.train import evaluate, fit

SGD = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
ADAMW = {k: RECIPE[k] for k in ("optimizer", "lr", "weight_decay", "schedule")}
SMOOTH = {"label_smoothing": 0.1}
RECIPES = {
    "article (fixed lr 0.01)": ARTICLE,
    "one-cycle, sgd lr 0.05": {**ARTICLE, **SGD, "schedule": "onecycle"},
    "cosine, sgd lr 0.05": {**ARTICLE, **SGD, "schedule": "cosine"},
    "cosine + crop/flip": {**ARTICLE, **SGD, "schedule": "cosine", "augment": True},
    "cosine, adamw lr 3e-3 wd 0.05": {**ARTICLE, **ADAMW},
    "adamw + label smoothing 0.1": {**ARTICLE, **ADAMW, **SMOOTH},
    "adamw + crop/flip": {**ARTICLE, **ADAMW, "augment": True},
    "adamw + crop/flip + label smoothing": {**ARTICLE, **ADAMW, **SMOOTH, "augment": True},
}


def strongest(epochs: int) -> dict:
    """The strongest recipe known for the article's CNN at that length (the table in
    docs/measured.md): AdamW on the cosine schedule, with the regularizers ``search.recipe``
    switches on by length, the same rule the final fit follows."""
    return recipe.with_length(RECIPE, epochs)


def fixed_epochs(budget: float, per_epoch: float, augment: float) -> int:
    """Epochs of the fixed recipe that fit ``budget`` at ``per_epoch`` seconds, plus
    ``augment`` seconds an epoch once its length switches crop and flip on."""
    epochs = max(1, int(budget / per_epoch))
    while (
        epochs > 1
        and epochs * (per_epoch + augment * recipe.by_length(epochs)["augment"]) > budget
    ):
        epochs -= 1
    return epochs


def chosen_precision(splits, asked: str = "auto") -> str:
    """The precision ``search.run --precision {asked}`` trains in here (bf16 where the CPU has
    it natively, for ``auto``): a benchmark's fixed side trains as fast as the study's."""
    return precision.choose(asked, splits.device, precision.cpu_flags(), precision.bf16_is_faster)


def fixed(splits, epochs: int) -> tuple[float, float]:
    """(seconds, test accuracy) of ``recipes.strongest(epochs)``, from the article's seed, by
    the product's trainer in the precision ``--precision auto`` picks here, scored in fp32, as
    the study's champion is (it is served in fp32)."""
    spec = spec_from_params(
        strongest(epochs), epochs=epochs, seed=0, precision=chosen_precision(splits)
    )
    start = time.perf_counter()
    model, _ = fit(spec.model, spec.train, splits.train_and_val())
    _, accuracy = evaluate(scored(model, spec, splits), *splits.test)
    return time.perf_counter() - start, accuracy


def scored(model: torch.nn.Module, spec, splits) -> torch.nn.Module:
    """``model`` as the product scores its champion of ``spec``: the rule is
    ``search.champion.served_views``'s, with no latency limit."""
    return ViewAverage(model) if served_views(spec, Limits(), splits) > 1 else model


def describe(epochs: int) -> str:
    words = recipe.by_length(epochs)
    extras = ["crop/flip"] if words["augment"] else []
    extras += [f"label smoothing {words['label_smoothing']:g}"] if words["label_smoothing"] else []
    return f"article CNN, AdamW cosine, {epochs} epochs" + "".join(f", {e}" for e in extras)


def run(params: dict, splits, epochs: int, chosen: str, seed: int = 0) -> tuple[float, str, float]:
    """(test accuracy, the same averaging views where the recipe has crop/flip or "-", seconds)
    of ``params`` trained in ``chosen`` precision from ``seed``, scored in fp32."""
    spec = spec_from_params(params, epochs=epochs, seed=seed, precision=chosen)
    start = time.perf_counter()
    model, _ = fit(spec.model, spec.train, splits.train_and_val())
    seconds = time.perf_counter() - start
    champion = scored(model, spec, splits)
    averaged = "-" if champion is model else f"{evaluate(champion, *splits.test)[1]:.4f}"
    return evaluate(model, *splits.test)[1], averaged, seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.recipes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--epochs", type=int, nargs="+", default=[5], help="lengths (default: 5)")
    p.add_argument("--only", nargs="*", default=None, help="recipe names (prefixes) to run")
    p.add_argument("--network", type=json.loads, default={}, help="params replacing the article's")
    # search.run's default: before 2026-12-05 this benchmark trained in fp32 whatever the CPU
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--seed", type=int, default=0, help="initial weights and batches")
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    splits = load_splits(device="cpu")
    chosen = chosen_precision(splits, args.precision)
    print(
        f"hardware: {platform.machine()}, {os.cpu_count()} CPU cores; torch {torch.__version__}; "
        f"trained in {chosen}, scored in fp32"
    )
    network = f"the article's CNN with {args.network}" if args.network else "the article's CNN"
    print(f"{network} on 60,000 images, one run per recipe and length, seed {args.seed}\n")
    print("| recipe | epochs | test accuracy | averaging 6 views (crop/flip only) | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for epochs in args.epochs:
        for name, params in RECIPES.items():
            if args.only and not any(name.startswith(o) for o in args.only):
                continue
            accuracy, averaged, seconds = run(
                {**params, **args.network}, splits, epochs, chosen, args.seed
            )
            print(
                f"| {name} | {epochs} | {accuracy:.4f} | {averaged} | {seconds:.0f} |", flush=True
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

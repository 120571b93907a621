"""Samplers and pruners by name (``--sampler``, ``--pruner``).

Grid mode samples nothing: its combinations are enqueued as fixed trials (see
``search.study``), so it runs with a RandomSampler that is never consulted.
"""

from __future__ import annotations

import optuna

SAMPLERS = ("tpe", "random", "cmaes", "qmc", "gp", "grid")
PRUNERS = ("hyperband", "median", "successive-halving", "none")


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # Optuna 5's TPE is multivariate with constant liar: good with parallel workers; it
        # learns from the constraints a trial sets (search.limits) by itself.
        return optuna.samplers.TPESampler(seed=seed)
    if name == "cmaes":
        # CMA-ES samples only numeric params; categoricals fall back to random, quietly.
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name in ("random", "grid"):
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")


def make_pruner(name: str, steps: int, **hyperband: int) -> optuna.pruners.BasePruner:
    """Resources are counted in steps (1..steps), each a fixed number of training images.
    ``hyperband``: a space file's ``min_resource`` and ``reduction_factor`` (1 and 3 else)."""
    if name == "hyperband":
        options = {"min_resource": 1, "reduction_factor": 3, **hyperband}
        return optuna.pruners.HyperbandPruner(max_resource=steps, **options)
    if name == "median":
        # 5 complete trials before judging anyone: a median of fewer is noise.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if name == "successive-halving":
        # One bracket: the default, because TPE then learns from every trial (under Hyperband
        # it samples per bracket, and each bracket spends its own 10 random start-up trials:
        # 30 of 50 in the default study). Rungs at 1 and 4 steps, the best quarter going on:
        # with a factor of 3 (rungs 1, 3, 9 of 10) over a quarter of the trials got past step
        # 3 and trained 9 of their 10 steps, pruned or not, half of all the trials' steps
        # (seeds 1 and 2 of the default study; docs/measured.md, 2026-12-02).
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=4)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"--pruner must be one of {', '.join(PRUNERS)}, got {name!r}")

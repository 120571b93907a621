"""Pictures people would rather look than read: confusion matrix, sample predictions, and
Optuna's plots, as matplotlib figures and HTML in memory (MLflow logs them as they are; the
Optuna artifact store needs files: ``search.artifacts`` writes them). Close figures with
``plt.close``, or use ``closing``."""

from __future__ import annotations

import html

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt
import optuna
import torch

from data import CLASSES


def confusion(labels: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """10x10 counts: row = true class, column = predicted class."""
    matrix = torch.zeros(10, 10, dtype=torch.long)
    matrix.index_put_(
        (labels.cpu(), predicted.cpu()), torch.ones_like(labels.cpu()), accumulate=True
    )
    return matrix


def confusion_figure(matrix: torch.Tensor, split: str = "test") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xticks(range(10), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(10), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max().item() / 2
    for i in range(10):
        for j in range(10):
            value = matrix[i, j].item()
            ax.text(
                j,
                i,
                value,
                ha="center",
                va="center",
                fontsize=8,
                color="white" if value > threshold else "black",
            )
    accuracy = matrix.diag().sum().item() / matrix.sum().item()
    ax.set_title(f"{split.capitalize()} set confusion matrix (accuracy {accuracy:.4f})")
    fig.tight_layout()
    return fig


def per_class(matrix: torch.Tensor) -> dict[str, float]:
    """Accuracy of each class, by name."""
    accuracy = (matrix.diag().double() / matrix.sum(1).double()).tolist()
    return dict(zip(CLASSES, accuracy, strict=True))


def samples_figure(
    images: torch.Tensor, labels: torch.Tensor, predicted: torch.Tensor
) -> plt.Figure:
    """The first 32 images of a split with predicted / true labels (red when wrong), drawn as
    one mosaic in one axes: 32 axes take a second to lay out, one takes a tenth."""
    rows, cols, cell = 4, 8, 40  # a 28-pixel image and room for two lines of label below it
    mosaic = torch.ones(rows * cell, cols * cell)
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        mosaic[r * cell : r * cell + 28, c * cell + 6 : c * cell + 34] = images[i, 0].cpu()
    fig, ax = plt.subplots(figsize=(12, 7))
    ax.imshow(mosaic.numpy(), cmap="gray", vmin=0, vmax=1)
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        ok = bool(predicted[i] == labels[i])
        ax.text(
            c * cell + 20,
            r * cell + 29,
            f"{CLASSES[predicted[i]]}\n({CLASSES[labels[i]]})",
            ha="center",
            va="top",
            fontsize=7,
            color="black" if ok else "red",
        )
    ax.axis("off")
    ax.set_title("predicted (true)")
    fig.tight_layout()
    return fig


# fANOVA fits a random forest to the complete trials: on fewer than this it ranks noise (and
# its fit, scikit-learn's import included, costs a tiny study's run a second of CPU).
IMPORTANCE_TRIALS = 10


def pareto_front(study: optuna.Study):
    """A two-objective study's front, its axes named by the study's metric names."""
    if len(study.directions) < 2:
        raise ValueError("one objective: no front")
    return optuna.visualization.plot_pareto_front(study, target_names=study.metric_names)


def optuna_html(study: optuna.Study) -> tuple[str, list[str]]:
    """Optuna's interactive plots as one standalone HTML page (plotly.js embedded once, so it
    opens offline). A plot that cannot be drawn yet is left out, and importances wait for
    ``IMPORTANCE_TRIALS`` complete trials (the page says so); returns the page and the names
    of the plots in it."""
    vis = optuna.visualization
    plots = {
        "Pareto front": pareto_front,
        "optimization history": vis.plot_optimization_history,
        "parameter importances": vis.plot_param_importances,
        "parallel coordinates": vis.plot_parallel_coordinate,
        "intermediate values": vis.plot_intermediate_values,
    }
    complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    notes = []
    if complete < IMPORTANCE_TRIALS:
        del plots["parameter importances"]
        notes.append(
            f"<p>Parameter importances: shown from {IMPORTANCE_TRIALS} complete trials on "
            f"({complete} so far); on fewer they rank noise.</p>"
        )
    parts, drawn = [], []
    for name, plot in plots.items():
        try:
            figure = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue
        parts.append(figure.to_html(full_html=False, include_plotlyjs=not parts))
        drawn.append(name)
    title = f"<h1>Optuna study {html.escape(study.study_name)}</h1>"
    body = title + "".join(notes) + "".join(parts)
    page = f"<html><head><meta charset='utf-8'></head><body>{body}</body></html>"
    return page, drawn

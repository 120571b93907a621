"""Hyperparameter search for Fashion-MNIST classifiers: the only package that knows Optuna and
MLflow. Entry points: ``python -m search.run`` (the study) and ``python -m search.bench``
(data-path throughput). The trainer (``search.train``) and device choice (``search.device``)
use only torch."""

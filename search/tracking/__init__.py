"""Everything MLflow, in one folder: no module outside it imports MLflow (the MLflow UI's
launcher in ``search.viewers`` starts its server as a program, and ``docs/screenshots.py``
reads it over HTTP).

- ``hooks``: the search's hooks (``search.hooks``) as MLflow records; ``open_for_run``.
- ``client``: one ``MlflowClient`` for a run, every call bounded, tracking off after a failure.
- ``runs``: the parent run, a child run per trial, re-runs, the final fit, trials MLflow missed.
- ``checkpoints``: a trial's weights, for whichever process ends the study.
- ``registry``: the champion's registration and its alias.
- ``packaging``, ``serving``: the champion's MLflow format, loaded and served without us.

Importing this package imports nothing: a ``--no-mlflow`` run never loads MLflow.
"""

#!/usr/bin/env bash
# Start N workers of one study on a Slurm cluster, then one job that ends the study (re-runs,
# final fit, champion) once the array is over, whatever became of its tasks (afterany).
#
#   export FASHION_SEARCH_STORAGE=postgresql://USER:PASSWORD@DBHOST/optuna
#   export MLFLOW_TRACKING_URI=http://MLFLOWHOST:5000
#   deploy/slurm/submit.sh N TRIALS [search.run flags: --study big --epochs 2 ...]
#
# Run it from the checkout (with its .venv) on a shared file system; prints both job ids.
# CPUS_PER_TASK (default 2) sets each worker's cores; PYTHON, the interpreter (default the
# checkout's .venv/bin/python).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workers=${1:?usage: submit.sh N TRIALS [search.run flags]}
trials=${2:?usage: submit.sh N TRIALS [search.run flags]}
shift 2
: "${FASHION_SEARCH_STORAGE:?set FASHION_SEARCH_STORAGE to a PostgreSQL or MySQL URL}"
cpus=${CPUS_PER_TASK:-2}  # each worker's cores (and its torch threads)
array=$(sbatch --parsable --array=1-"$workers" --cpus-per-task="$cpus" "$here/worker.sbatch" \
    --trials "$trials" --trials-only "$@")
ender=$(sbatch --parsable --dependency=afterany:"$array" --job-name=fashion-search-end \
    --cpus-per-task="$cpus" "$here/worker.sbatch" --trials "$trials" "$@")
echo "workers: job $array (array 1-$workers); end of the study: job $ender"

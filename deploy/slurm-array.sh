#!/bin/bash
# One LS3 sweep as a SLURM job array: task i runs run i of SWEEP_DIR/sweep.json.
#
#   ls3 sweep plan --out /shared/sweep --envs navigation --seeds 0-4   # prints the run count N
#   sbatch --array=0-$((N-1))%K deploy/slurm-array.sh /shared/sweep   # K tasks at a time
#   ls3 sweep report /shared/sweep                                     # when they are done
#
# SWEEP_DIR must be on a file system every node sees. A task that is preempted or times out
# leaves a resumable run: submit the same array again and finished runs are skipped.
# The default --array below fits the default plan (1 environment × 5 seeds × 3 ablations).
#SBATCH --job-name=ls3-sweep
#SBATCH --array=0-14%4
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=24:00:00
#SBATCH --output=ls3-sweep-%A_%a.out

set -euo pipefail
SWEEP_DIR="${1:?usage: sbatch --array=0-(N-1)%K deploy/slurm-array.sh SWEEP_DIR}"
LS3="${LS3:-ls3}"

# The run index comes from SLURM_ARRAY_TASK_ID.
srun "$LS3" sweep run "$SWEEP_DIR"

#!/bin/bash
# apcodec on a Slurm job array: each task encodes its share of a folder tree.
#   sbatch docs/scale-out/slurm.sh music/ codes/      (--array=1-32 on the command line
#                                                     overrides the size below)
# Each task appends to summaries/<array job>_<task>.jsonl. Once the array has ended:
#   apcodec batch-status summaries/ --inputs music/
# A failed or killed task is run again by submitting the same array again: every task
# skips the outputs that exist, so only the work left is done.
#SBATCH --job-name=apcodec
#SBATCH --array=1-8
#SBATCH --cpus-per-task=4
#SBATCH --mem=4G
#SBATCH --time=02:00:00
#SBATCH --output=apcodec-%A_%a.log
set -euo pipefail
input=${1:?usage: sbatch slurm.sh INPUT_DIR OUTPUT_DIR}
output=${2:?usage: sbatch slurm.sh INPUT_DIR OUTPUT_DIR}
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
exec apcodec encode --shard auto \
    --summary "summaries/${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}.jsonl" "$input" "$output"

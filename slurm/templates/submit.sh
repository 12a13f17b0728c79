#!/bin/bash
# Submits the sweep's jobs with their dependencies; written by `universae sweep {{SWEEP}} --slurm`
# from slurm/templates/submit.sh. Job ids go to jobs.txt next to this file.
set -euo pipefail
cd "$(dirname "$0")"
: > jobs.txt
submit() {  # submit STEP [sbatch options]: prints the job id
  local step=$1; shift
  local id
  id=$(sbatch --parsable "$@" "$step.sbatch")
  id=${id%%;*}
  echo "$step $id" >> jobs.txt
  echo "submitted $step.sbatch as job $id" >&2
  echo "$id"
}
{{SUBMISSIONS}}

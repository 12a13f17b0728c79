#!/bin/bash
# Submits the sweep's jobs with their dependencies; written by `universae sweep {{SWEEP}} --slurm`
# from slurm/templates/submit.sh. Job ids go to jobs.txt next to this file.
set -euo pipefail
cd "$(dirname "$0")"
: > jobs.txt
# A failed sbatch must end the script: `x=$(submit ...)` runs submit in a subshell, where bash does not
# apply set -e unless told to, and a dependent job must never be submitted after its dependency failed.
shopt -s inherit_errexit
cancel_submitted() {  # the jobs this run submitted before the failure, so that none is left half-wired
  local ids
  ids=$(awk '{print $2}' jobs.txt | tr '\n' ' ')
  if [ -n "${ids// /}" ]; then
    scancel $ids || true
    echo "submit.sh: cancelled the jobs already submitted: $ids" >&2
  fi
}
submit() {  # submit STEP [sbatch options]: prints the job id
  local step=$1; shift
  local id
  if ! id=$(sbatch --parsable "$@" "$step.sbatch"); then
    echo "submit.sh: sbatch failed for $step.sbatch (its message is above)" >&2
    exit 1
  fi
  id=${id%%;*}
  if ! [[ $id =~ ^[0-9]+$ ]]; then
    echo "submit.sh: sbatch gave no job id for $step.sbatch (it printed '$id')" >&2
    exit 1
  fi
  echo "$step $id" >> jobs.txt
  echo "submitted $step.sbatch as job $id" >&2
  echo "$id"
}
trap 'cancel_submitted' ERR
{{SUBMISSIONS}}

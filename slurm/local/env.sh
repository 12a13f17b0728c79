# The single-node cluster of slurm/local-cluster.sh (this machine). Sourced by every sweep job.
# Its daemons run jobs as root, which OpenMPI refuses unless told.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# srun starts the ranks through PMIx (MpiDefault=pmix); Debian's OpenMPI has no PMI2.
# --kill-on-bad-exit=1: a rank that dies ends the step instead of leaving the others in a collective.
UNIVERSAE_LAUNCH="srun --mpi=pmix --kill-on-bad-exit=1"

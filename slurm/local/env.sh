# The single-node cluster of slurm/local-cluster.sh (this machine). Sourced by every sweep job.
# Its daemons run jobs as root, which OpenMPI refuses unless told.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# srun starts the ranks through PMIx (MpiDefault=pmix); Debian's OpenMPI has no PMI2.
UNIVERSAE_LAUNCH="srun --mpi=pmix"

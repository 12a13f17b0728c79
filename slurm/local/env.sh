# The single-node cluster of slurm/local-cluster.sh (this machine). Sourced by every sweep job.
# Its daemons run jobs as root, which OpenMPI refuses unless told.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# srun starts the ranks through PMIx (MpiDefault=pmix); Debian's OpenMPI has no PMI2. --wait: once a
# rank has ended, the others get 10 s to end too, then the step is ended: a rank lost on another node
# leaves its peers hanging in a collective otherwise (OpenMPI only warns "An MPI communication peer
# process has unexpectedly disconnected"; tests/slurm/test_two_nodes.py). Ranks that checkpoint on a
# signal exit 75 together, well within it.
UNIVERSAE_LAUNCH="srun --mpi=pmix --wait=10"

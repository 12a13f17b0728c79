# A starting point for a real cluster: copy this folder to slurm/<your cluster>/ and set
# `sweep.cluster = "<your cluster>"` in the sweep file. Sourced by every sweep job.
#
# Load what `universae` was built against (OpenMPI, parallel HDF5, LibTorch; CUDA and NCCL on GPUs):
# module purge
# module load gcc/12 openmpi/4.1 hdf5/1.10-mpi cuda/12
#
# How a job starts its ranks. srun is the usual choice; if your MPI has no Slurm PMI support, use
# "mpirun" (it reads the allocation from Slurm).
# A rank that dies must end the step, not leave the others in a collective. Across nodes OpenMPI's
# surviving ranks hang ("An MPI communication peer process has unexpectedly disconnected"), so give
# srun --wait=60: once one rank has ended, the rest get 60 s, then the step is ended
# (tests/slurm/test_two_nodes.py). Not --kill-on-bad-exit=1: it also kills ranks still finishing their
# checkpoint's exit 75, and srun then returns 143, so the job does not requeue itself.
UNIVERSAE_LAUNCH="srun --wait=60"

# A starting point for a real cluster: copy this folder to slurm/<your cluster>/ and set
# `sweep.cluster = "<your cluster>"` in the sweep file. Sourced by every sweep job.
#
# Load what `universae` was built against (OpenMPI, parallel HDF5, LibTorch; CUDA and NCCL on GPUs):
# module purge
# module load gcc/12 openmpi/4.1 hdf5/1.10-mpi cuda/12
#
# How a job starts its ranks. srun is the usual choice; if your MPI has no Slurm PMI support, use
# "mpirun" (it reads the allocation from Slurm, and ends the job when a rank dies). Keep
# --kill-on-bad-exit=1: without it a rank that dies (OOM killer, node failure) leaves the others
# waiting in a collective until the time limit.
UNIVERSAE_LAUNCH="srun --kill-on-bad-exit=1"

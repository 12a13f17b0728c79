# A starting point for a real cluster: copy this folder to slurm/<your cluster>/ and set
# `sweep.cluster = "<your cluster>"` in the sweep file. Sourced by every sweep job.
#
# Load what `universae` was built against (OpenMPI, parallel HDF5, LibTorch; CUDA and NCCL on GPUs):
# module purge
# module load gcc/12 openmpi/4.1 hdf5/1.10-mpi cuda/12
#
# How a job starts its ranks. srun is the usual choice; if your MPI has no Slurm PMI support, use
# "mpirun" (it reads the allocation from Slurm).
# A rank that dies must end the step, not leave the others in a collective: with srun --mpi=pmix
# the PMIx plugin aborts the step (tests/slurm: a killed rank ends it within 2 s). If your MPI does
# not (kill one rank of a test job and watch), add --kill-on-bad-exit=1 here; it also ends the step
# on a checkpoint's exit 75, which then races the job's requeue on some Slurm versions.
UNIVERSAE_LAUNCH="srun"

// MPI implementation of Comm and Environment. All MPI calls go through UNIVERSAE_MPI_CHECK.
#include "parallel/comm.hpp"

#include <mpi.h>
#include <unistd.h>

#include <boost/mpi/environment.hpp>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.hpp"
#include "parallel/native.hpp"

#define UNIVERSAE_MPI_CHECK(call)                                             \
  do {                                                                        \
    const int universae_mpi_rc_ = (call);                                     \
    if (universae_mpi_rc_ != MPI_SUCCESS) {                                   \
      ::universae::parallel::throw_mpi_error(#call, universae_mpi_rc_, __FILE__, __LINE__); \
    }                                                                         \
  } while (0)

namespace universae::parallel {
namespace {

[[noreturn]] void throw_mpi_error(const char* call, int rc, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  MPI_Error_string(rc, text, &len);
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  throw InternalError(std::string("MPI error in ") + call + ": " + text + " (" + file + ":" +
                      std::to_string(line) + ", rank " + std::to_string(rank) + " on " +
                      Comm::host_name() + ")");
}

int to_int(int64_t n) {
  if (n > INT_MAX) throw InternalError("MPI message of " + std::to_string(n) + " elements exceeds INT_MAX");
  return static_cast<int>(n);
}

// 128-bit integers travel as two 64-bit words; the sum op adds them as __int128.
MPI_Datatype int128_type() {
  static MPI_Datatype type = [] {
    MPI_Datatype t;
    UNIVERSAE_MPI_CHECK(MPI_Type_contiguous(2, MPI_INT64_T, &t));
    UNIVERSAE_MPI_CHECK(MPI_Type_commit(&t));
    return t;
  }();
  return type;
}

void sum_int128(void* in, void* inout, int* len, MPI_Datatype*) {
  core::wide_int a, b;
  auto* src = static_cast<char*>(in);
  auto* dst = static_cast<char*>(inout);
  for (int i = 0; i < *len; ++i) {
    std::memcpy(&a, src + 16 * i, 16);
    std::memcpy(&b, dst + 16 * i, 16);
    b += a;
    std::memcpy(dst + 16 * i, &b, 16);
  }
}

MPI_Op int128_sum_op() {
  static MPI_Op op = [] {
    MPI_Op o;
    UNIVERSAE_MPI_CHECK(MPI_Op_create(&sum_int128, /*commute=*/1, &o));
    return o;
  }();
  return op;
}

}  // namespace

struct Comm::Handle {
  MPI_Comm comm = MPI_COMM_NULL;
  bool owned = false;
  ~Handle() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned && !finalized && comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  }
};

Comm::Comm(std::shared_ptr<Handle> handle) : handle_(std::move(handle)) {
  UNIVERSAE_MPI_CHECK(MPI_Comm_rank(handle_->comm, &rank_));
  UNIVERSAE_MPI_CHECK(MPI_Comm_size(handle_->comm, &size_));
}

const void* Comm::native_handle() const { return &handle_->comm; }

Comm Comm::split(int color, int key) const {
  auto h = std::make_shared<Handle>();
  UNIVERSAE_MPI_CHECK(MPI_Comm_split(handle_->comm, color, key, &h->comm));
  h->owned = true;
  return Comm(h);
}

Comm Comm::node_local() const {
  auto h = std::make_shared<Handle>();
  UNIVERSAE_MPI_CHECK(MPI_Comm_split_type(handle_->comm, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &h->comm));
  h->owned = true;
  return Comm(h);
}

void Comm::barrier() const { UNIVERSAE_MPI_CHECK(MPI_Barrier(handle_->comm)); }

double Comm::allreduce_sum(double value) const {
  UNIVERSAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_DOUBLE, MPI_SUM, handle_->comm));
  return value;
}

int64_t Comm::allreduce_sum(int64_t value) const {
  UNIVERSAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT64_T, MPI_SUM, handle_->comm));
  return value;
}

double Comm::allreduce_max(double value) const {
  UNIVERSAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_DOUBLE, MPI_MAX, handle_->comm));
  return value;
}

void Comm::allreduce_sum(double* values, int64_t n) const {
  UNIVERSAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, to_int(n), MPI_DOUBLE, MPI_SUM, handle_->comm));
}

void Comm::allreduce_sum(int64_t* values, int64_t n) const {
  UNIVERSAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, to_int(n), MPI_INT64_T, MPI_SUM, handle_->comm));
}

void Comm::allreduce_sum(float* values, int64_t n) const {
  UNIVERSAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, to_int(n), MPI_FLOAT, MPI_SUM, handle_->comm));
}

void Comm::allreduce_min(double* values, int64_t n) const {
  UNIVERSAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, to_int(n), MPI_DOUBLE, MPI_MIN, handle_->comm));
}

void Comm::allreduce_min(int64_t* values, int64_t n) const {
  UNIVERSAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, to_int(n), MPI_INT64_T, MPI_MIN, handle_->comm));
}

void Comm::allreduce_max(float* values, int64_t n) const {
  UNIVERSAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, to_int(n), MPI_FLOAT, MPI_MAX, handle_->comm));
}

void Comm::allreduce_sum(core::wide_int* values, int64_t n) const {
  UNIVERSAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, to_int(n), int128_type(), int128_sum_op(), handle_->comm));
}

void Comm::allreduce_maxloc(float* values, int64_t* index, int64_t n) const {
  // MPI_FLOAT_INT carries an int index: latent counts stay far below 2^31.
  struct FloatInt {
    float value;
    int index;
  };
  std::vector<FloatInt> pairs(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (index[i] > INT_MAX) throw InternalError("allreduce_maxloc: index exceeds INT_MAX");
    pairs[i] = {values[i], static_cast<int>(index[i])};
  }
  UNIVERSAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, pairs.data(), to_int(n), MPI_FLOAT_INT, MPI_MAXLOC, handle_->comm));
  for (int64_t i = 0; i < n; ++i) {
    values[i] = pairs[i].value;
    index[i] = pairs[i].index;
  }
}

namespace {
template <typename T>
std::vector<T> allgatherv_impl(const std::vector<T>& local, MPI_Datatype type, MPI_Comm comm, int size) {
  int count = to_int(static_cast<int64_t>(local.size()));
  std::vector<int> counts(size), displs(size);
  UNIVERSAE_MPI_CHECK(MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, comm));
  int64_t total = 0;
  for (int r = 0; r < size; ++r) {
    displs[r] = to_int(total);
    total += counts[r];
  }
  std::vector<T> all(static_cast<size_t>(total));
  UNIVERSAE_MPI_CHECK(MPI_Allgatherv(local.data(), count, type, all.data(), counts.data(),
                                     displs.data(), type, comm));
  return all;
}
}  // namespace

std::vector<float> Comm::allgatherv(const std::vector<float>& local) const {
  return allgatherv_impl(local, MPI_FLOAT, handle_->comm, size_);
}

std::vector<int64_t> Comm::allgatherv(const std::vector<int64_t>& local) const {
  return allgatherv_impl(local, MPI_INT64_T, handle_->comm, size_);
}

std::vector<double> Comm::allgatherv(const std::vector<double>& local) const {
  return allgatherv_impl(local, MPI_DOUBLE, handle_->comm, size_);
}

std::vector<int32_t> Comm::allgatherv(const std::vector<int32_t>& local) const {
  return allgatherv_impl(local, MPI_INT32_T, handle_->comm, size_);
}

void Comm::broadcast(std::string& value, int root) const {
  int64_t n = static_cast<int64_t>(value.size());
  UNIVERSAE_MPI_CHECK(MPI_Bcast(&n, 1, MPI_INT64_T, root, handle_->comm));
  value.resize(static_cast<size_t>(n));
  if (n > 0) UNIVERSAE_MPI_CHECK(MPI_Bcast(value.data(), to_int(n), MPI_CHAR, root, handle_->comm));
}

void Comm::broadcast(int64_t* values, int64_t n, int root) const {
  UNIVERSAE_MPI_CHECK(MPI_Bcast(values, to_int(n), MPI_INT64_T, root, handle_->comm));
}

std::string Comm::host_name() {
  char name[256] = {0};
  gethostname(name, sizeof(name) - 1);
  return name;
}

struct Environment::Impl {
  boost::mpi::environment env;
  // Serialized: extraction's store writes run on a second thread while the main thread runs the forward
  // and makes no MPI call (lm/extract_stage.cpp); OpenMPI provides it at no cost to the other stages.
  Impl(int& argc, char**& argv) : env(argc, argv, boost::mpi::threading::serialized, /*abort_on_exception=*/false) {}
};

Environment::Environment(int& argc, char**& argv) : impl_(std::make_unique<Impl>(argc, argv)) {
  // Errors come back as return codes, so UNIVERSAE_MPI_CHECK can name the call and the rank.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

Environment::~Environment() = default;

Comm Environment::world() {
  auto h = std::make_shared<Comm::Handle>();
  h->comm = MPI_COMM_WORLD;
  return Comm(h);
}

void Environment::abort(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

bool threads_may_call_mpi() {
  int provided = MPI_THREAD_SINGLE;
  UNIVERSAE_MPI_CHECK(MPI_Query_thread(&provided));
  return provided >= MPI_THREAD_SERIALIZED;
}

namespace {

// The message of the lowest failing rank, on every rank; "" when none failed. A collective.
std::string first_error(const Comm& comm, const std::string& local_error) {
  // The lowest failing rank's message wins: reduce (failed ? rank : size) with MIN.
  int mine = local_error.empty() ? comm.size() : comm.rank();
  int first = 0;
  UNIVERSAE_MPI_CHECK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, native(comm)));
  if (first == comm.size()) return {};
  std::string message = local_error;
  comm.broadcast(message, first);
  return message;
}

}  // namespace

void agree_on_error(const Comm& comm, const std::string& local_error) {
  std::string message = first_error(comm, local_error);
  if (!message.empty()) throw UsageError(message);
}

void agree_on_failure(const Comm& comm, const std::string& local_error) {
  std::string message = first_error(comm, local_error);
  if (!message.empty()) throw InternalError(message);
}

}  // namespace universae::parallel

// Shared by the libFuzzer targets (fuzz/README.md): the parsers read files, so each input is written
// to a file in /dev/shm first; MPI is initialised once (singleton) for the readers that take a Comm.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "parallel/comm.hpp"

namespace universae::fuzz {

// This process's scratch path `name` in /dev/shm.
inline std::string scratch_path(const std::string& name) {
  return "/dev/shm/universae-fuzz-" + std::to_string(getpid()) + "-" + name;
}

// A per-process scratch file, rewritten by every input.
inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_path(name);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

// MPI for the whole fuzzing process (never finalised: libFuzzer exits from its own loop).
inline const parallel::Comm& world() {
  static int argc = 1;
  static char name[] = "fuzz";
  static char* args[] = {name, nullptr};
  static char** argv = args;
  static parallel::Environment* env = new parallel::Environment(argc, argv);
  static const parallel::Comm comm = (static_cast<void>(env), parallel::Environment::world());
  return comm;
}

}  // namespace universae::fuzz

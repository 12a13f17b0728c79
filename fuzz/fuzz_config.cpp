// TOML job files: any bytes either load into a validated Config or are a UsageError.
#include "config/config.hpp"
#include "core/error.hpp"
#include "fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = universae::fuzz::write_input("job.toml", data, size);
  try {
    const auto config = universae::config::load(path, {});
    universae::config::to_toml(config);
    universae::config::expand_grid(config);
  } catch (const universae::UsageError&) {
  }
  return 0;
}

// Unit-test helper: the message of the UsageError a call throws.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "core/error.hpp"

namespace universae::test_support {

// The message of the UsageError `fn` throws (fails the test if it throws none).
template <typename Fn>
std::string usage_error(Fn&& fn) {
  try {
    fn();
  } catch (const UsageError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a UsageError";
  return "";
}

}  // namespace universae::test_support

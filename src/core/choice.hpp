// Named choices: an enum whose values are spelled by a fixed list of names (config keys, file
// attributes). Each enum declares its names once, next to it:
//
//   enum class Mapping { kOneToOne, kManyToOne, kMutual };
//   template <> inline const Choices& choices<Mapping>() { static const Choices c{"a mapping", {...}}; return c; }
//
// and is then parsed and printed through choice_from / name_of. No ATen, no MPI: config/ uses it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace universae::core {

struct Choices {
  std::string noun;                // "an architecture": what one value is, for messages
  std::vector<std::string> names;  // in the order of the enum's values
  // "relu, topk, batchtopk, jumprelu or gated"
  std::string list() const {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i)
      out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + (names[i].empty() ? "\"\"" : names[i]);
    return out;
  }
};

template <typename E>
const Choices& choices();  // specialised next to each enum

template <typename E>
const std::string& name_of(E value) {
  return choices<E>().names.at(static_cast<size_t>(value));
}

template <typename E>
std::optional<E> choice_from(const std::string& name) {
  const auto& names = choices<E>().names;
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<E>(i);
  return std::nullopt;
}

// `key = "name" is not an architecture; choose relu, topk, ...`
template <typename E>
std::string not_a_choice(const std::string& key, const std::string& name) {
  return key + " = \"" + name + "\" is not " + choices<E>().noun + "; choose " + choices<E>().list();
}

}  // namespace universae::core

#include "io/text_file.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace universae::io {

bool publish_text(const std::string& path, const std::string& text, bool executable) {
  namespace fs = std::filesystem;
  const std::string temp = path + ".partial";
  {
    std::ofstream out(temp);
    out << text;
    if (!out) return false;
  }
  std::error_code ec;
  if (executable)
    fs::permissions(temp, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec, fs::perm_options::add, ec);
  if (!ec) fs::rename(temp, path, ec);
  if (ec) fs::remove(temp, ec);
  return !ec;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(path + ": cannot open for reading");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace universae::io

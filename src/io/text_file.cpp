#include "io/text_file.hpp"

#include <filesystem>
#include <fstream>

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

}  // namespace universae::io

// How the statistics registry's columns print in the console tables of `compare` and `run`
// (compare/statistics.hpp declares each column's Display; app/summary.cpp prints them). No ATen here,
// so the program's front end does not compile the statistics' kernels' headers.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace universae::compare {

struct Display {
  enum class Style { kFixed6, kFixed4, kYesNo, kCount, kScoreP };  // kScoreP: "score (p)" with the column <name>_p
  std::string table;    // its table's title, e.g. "pair (MCS)"
  std::string heading;  // e.g. "decoder a→b"
  int width = 12;
  Style style = Style::kFixed6;
};

// A console table: its title and the columns shown in it (summary column name, display), in registry order.
struct ConsoleTable {
  std::string title;
  std::vector<std::pair<std::string, Display>> columns;
};

// Every table the registry's columns ask for, in the order they first appear.
std::vector<ConsoleTable> console_tables();

}  // namespace universae::compare

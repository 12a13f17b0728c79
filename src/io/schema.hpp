// What every group and dataset universae writes means: one table per file kind (results, SAE file,
// activation store) of (path pattern, description, units). Each file is described once, just before
// its `complete` attribute is written, by walking it and writing the matching entry's `description`
// (and `units`, where it has any) as string attributes; `h5ls -v` and h5py's `.attrs` show them
// (docs/file-formats.md). A new dataset needs a new entry here: tests/e2e/test_descriptions.py fails
// on any object of a finished file that has no description.
#pragma once

#include <string>
#include <vector>

#include "io/h5.hpp"

namespace universae::io {

struct ObjectSchema {
  // An absolute path; "*" stands for any run of characters within one name segment
  // ("/pairs/*/lap/decoder_cos", "/training/tokens*"). The first matching entry of a table wins.
  std::string pattern;
  std::string description;  // one or two sentences, for a reader of the file
  std::string units;        // "cosine", "fraction", "tokens", ...; "" for ids, indices and free scales
};

enum class SchemaKind { kResults, kSae, kActivationStore };

const std::vector<ObjectSchema>& schema(SchemaKind kind);

// Whether `object` ("/pairs/a--b/lap") matches `pattern` segment by segment.
bool schema_pattern_matches(const std::string& pattern, const std::string& object);

// The first entry of `kind`'s table matching `object`, or nullptr.
const ObjectSchema* schema_entry(SchemaKind kind, const std::string& object);

// Collective (every rank walks the same metadata and writes the same attributes): `description` and
// `units` on the root and every group and dataset of `f` that the table describes. An object that
// already has a `description` attribute keeps it (/summary_columns' is its columns' descriptions).
// Returns the objects the table does not describe.
std::vector<std::string> describe_objects(File& f, SchemaKind kind);

}  // namespace universae::io

// Whether a stage's output may be reused: the one decision extract, train, compare and the sweep's
// planner all make the same way. Every output universae writes (activation store, SAE file, results
// file, checkpoint) carries a root attribute `fingerprint`: the text config::fingerprint() makes of
// the resolved keys the output depends on and the identities of its inputs. A complete output whose
// fingerprint equals the one the current settings make is reused; anything else is recomputed.
//
// No MPI: every rank (or a launcher that is no MPI process) decides from the files alone, and all
// reach the same answer because they read the same files.
#pragma once

#include <string>

namespace universae::io {

// What an input is, independent of where it lies, for a fingerprint:
//  - an output of universae (an HDF5 file with a fingerprint): its format and a hash of that
//    fingerprint, so a chain of stages is invalidated exactly when an upstream setting changes;
//  - any other file: its size and a hash of its content (files up to 64 MiB), else its size and
//    modification time (a model checkpoint of many GB is not read just to name it);
//  - a directory (a sparsify/SAELens SAE, a model): the identities of the files in it, by name;
//  - a path that does not exist: "missing".
std::string input_identity(const std::string& path);

// A short, stable hash of a fingerprint text (16 hex digits), for logs and identities.
std::string fingerprint_hash(const std::string& fingerprint);

// Why `path` cannot be reused with `fingerprint`, or "" when it can: "missing", "incomplete",
// "made with other settings", "written by an older universae (no fingerprint)".
std::string reuse_problem(const std::string& path, const std::string& fingerprint);
inline bool reusable(const std::string& path, const std::string& fingerprint) { return reuse_problem(path, fingerprint).empty(); }

// Whether a partial output (complete or not) was begun with `fingerprint`: it may be resumed.
bool resumable(const std::string& path, const std::string& fingerprint);

}  // namespace universae::io

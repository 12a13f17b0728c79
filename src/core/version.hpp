// What this build is and where its source tree lies (provenance in every output; the source tree
// holds configs/concepts.toml, scripts/report.py and slurm/). Defined in one generated file
// (core/version.cpp.in), so a new commit recompiles one translation unit, not every one.
#pragma once

namespace universae::build {

extern const char* const kVersion;     // "0.4.0" (docs/changelog.md)
extern const char* const kGitSha;      // 12 hex digits of the commit built, or "unknown"
extern const char* const kSourceDir;   // the source tree this binary was built from

}  // namespace universae::build

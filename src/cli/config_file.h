// lens-embed.toml read into raw values that remember their `file:line` (phase one of the
// configuration; raw_config.h applies the precedence). toml++ stays inside config_file.cpp.
#pragma once

#include <map>
#include <string>

#include "cli/raw_config.h"
#include "core/source_mapping.h"
#include "util/result.h"

namespace lens::cli {

// What the file said; a key that is absent stays unset. Every key the program knows is
// listed once, in config_file.cpp.
struct FileValues {
  Sourced database;  // [database] url
  // [defaults]
  Sourced provider, model, batch_size, concurrency, max_attempts, dimensions, long_input, encoding_format,
      timeout_seconds, unavailable_after, sweep_every, metrics_addr;
  std::map<std::string, ProviderSection> providers;  // [providers.NAME]; kind etc. unset when absent
  std::map<std::string, ModelOverride> models;       // [models."NAME"]
  std::vector<core::MappingEntry> mapping;           // every key of [source] and [output], as given
};

// Parses the TOML file at `path`. Sources read "PATH:LINE".
// On failure: invalid_argument "PATH:LINE: what is wrong" (unreadable file, TOML syntax,
// a [providers.NAME], [source] or [output] that is not a table, an array where a value
// belongs, an unknown table or key: named with the nearest known one). Values are not
// checked here (settings.h does that, naming the same PATH:LINE). The keys of [source] and
// [output] are checked later, by core::make_source_mapping.
[[nodiscard]] util::Result<FileValues> read_config_file(const std::string& path);

}  // namespace lens::cli

// One function per command, each in its own file beside this one. app.cpp parses the flags,
// resolves the raw configuration once and calls one of these; each returns the exit status
// (exit_status.h) after printing its result or error.
#pragma once

#include "cli/flags.h"
#include "cli/raw_config.h"

namespace lens::cli {

// Creates or upgrades the output tables and indexes. With pgvector the vector column is
// sized only when the command line names the size, the model or the provider.
[[nodiscard]] int cmd_init(const Flags& flags, const RawConfig& config);

// Embeds every exchange without an up-to-date row (with `retry_failures`, the recorded
// failures too), once or, with --follow, until a signal. Installs the signal handlers.
[[nodiscard]] int cmd_run(const Flags& flags, const RawConfig& config, bool retry_failures);

// Embedded, pending, stale and failed counts per (provider, model) and the recent runs.
[[nodiscard]] int cmd_status(const Flags& flags, const RawConfig& config);

// Lists the recorded failures, or with --retry embeds them again (cmd_run).
[[nodiscard]] int cmd_failures(const Flags& flags, const RawConfig& config);

// The top-k exchanges by cosine similarity to flags.query.
[[nodiscard]] int cmd_search(const Flags& flags, const RawConfig& config);

// The token count (and ids) of flags.file, or stdin, with the model's tokenizer.
[[nodiscard]] int cmd_tokens(const Flags& flags, const RawConfig& config);

// Every setting with its source, secrets masked. Shows raw values, so it still works when
// one of them is invalid: it is how the user finds it.
[[nodiscard]] int cmd_config(const Flags& flags, const RawConfig& config);

}  // namespace lens::cli

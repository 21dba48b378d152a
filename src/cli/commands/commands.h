// One function per command, each in its own file beside this one. app.cpp parses the flags,
// resolves the raw configuration once and calls one of these; each returns the exit status
// (exit_status.h) after printing its result or error.
#pragma once

#include "cli/dotenv.h"
#include "cli/flags.h"
#include "cli/raw_config.h"

namespace lens::cli {

// Creates or upgrades the output tables and indexes (a missing SQLite file only with
// --create). With pgvector the vector column is sized only when the command line names
// the size, the model or the provider.
[[nodiscard]] int cmd_init(const Flags& flags, const RawConfig& config);

// Embeds every exchange without an up-to-date row, once or, with --follow, as one run
// until a signal. Installs the signal handlers.
[[nodiscard]] int cmd_run(const Flags& flags, const RawConfig& config);

// One run of config's (provider, model): `run`, and each pair of `failures --retry`
// (`only_failures`: exactly the recorded failures). Before anything is sent, the size of
// the vectors is checked against the rows already stored for the pair (exit 2 with what
// to do when they differ, unless --force). After the run: exit 1 when transient failures
// are left for the pair, the summary saying how many and when they are retried.
[[nodiscard]] int run_once(const Flags& flags, const RawConfig& config, bool only_failures);

// Embedded, pending, stale and failed (by class) counts of every (provider, model) in the
// database (or those --provider/--model name), and the recent runs. Read-only.
[[nodiscard]] int cmd_status(const Flags& flags, const RawConfig& config);

// `batches`: the recorded Batch API batches; --cancel ID / --cancel-all cancel unfinished ones.
[[nodiscard]] int cmd_batches(const Flags& flags, const RawConfig& config);

// Lists the recorded failures (every pair, or those --provider/--model name), or with
// --retry embeds exactly them again, each pair with its own provider and model (the
// configuration resolved again for it, with `dotenv`).
[[nodiscard]] int cmd_failures(const Flags& flags, const RawConfig& config, const DotenvOrigins& dotenv);

// The top-k exchanges by cosine similarity to flags.query, in the only (provider, model)
// with rows (or the one named); with several, lists them and asks (exit 2). Read-only.
[[nodiscard]] int cmd_search(const Flags& flags, const RawConfig& config, const DotenvOrigins& dotenv);

// Checks the stored embeddings of config's (provider, model) against the source as it is now:
// stale rows (input hash differs), orphans, missing exchanges, rows of the wrong size and,
// with flags.sample, stored vectors against fresh embeddings. Read-only (no DDL, no writer
// lock). Exit 0 when clean, 1 when something was found (each finding with its repair).
[[nodiscard]] int cmd_verify(const Flags& flags, const RawConfig& config);

// The token count (and ids) of flags.file, or stdin, with the model's tokenizer.
[[nodiscard]] int cmd_tokens(const Flags& flags, const RawConfig& config);

// Read-only checks of what the database needs for the mapping in effect (doctor.cpp): exit
// 0 when all is there, 1 with a fix for each recommendation not met, 2 for a configuration
// error.
[[nodiscard]] int cmd_doctor(const Flags& flags, const RawConfig& config);

// Every setting with its source, secrets masked. Shows raw values, so it still works when
// one of them is invalid: it is how the user finds it.
[[nodiscard]] int cmd_config(const Flags& flags, const RawConfig& config);

}  // namespace lens::cli

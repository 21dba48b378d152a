// Exit statuses and the one mapping from an error to one; the signals that stop a run
// early. k_exit_status_table is the one text of what each means: --help, `man` and the
// README's table say the same.
#pragma once

#include <string>

#include "pipeline/pipeline.h"
#include "util/result.h"

namespace lens::cli {

inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_stopped = 1;
inline constexpr int k_exit_usage = 2;

inline constexpr const char* k_exit_status_table =
    "Exit status:\n"
    "  0  every eligible exchange is embedded or permanently failed\n"
    "  1  stopped early or left work undone: interrupted, provider unavailable, database lost,\n"
    "     transient failures left (later runs retry them)\n"
    "  2  usage or configuration: flags, config file, .env, unknown model, unsupported\n"
    "     dimensions, missing source tables or columns, HTTP 401/403/404, database\n"
    "     authentication\n";

// 2 for what the user must fix (invalid_argument: flags, config, .env, dimensions;
// configuration: credentials, endpoint, schema, missing tables; not_found: a file, column
// or model that should exist), 1 for everything else (transient: provider unavailable,
// database lost; cancelled; fatal: quota; internal).
[[nodiscard]] int exit_status(util::ErrorCode code);

// Prints "lens-embed: MESSAGE" (redacted) on stderr; returns exit_status(error.code).
[[nodiscard]] int report(const util::Error& error);

// Prints "lens-embed: MESSAGE" (redacted) on stderr; returns k_exit_usage.
[[nodiscard]] int usage_error(const std::string& message);

// Set by SIGINT/SIGTERM once install_signal_handlers() ran: 1 after the first signal (stop
// taking work, finish, exit 1); a second signal exits at once with status 1.
[[nodiscard]] const pipeline::StopFlag& stop_flag();

// Installs the SIGINT/SIGTERM handlers behind stop_flag() and ignores SIGPIPE (a closed
// socket is an error return, not a death). Call from the main thread before starting work.
void install_signal_handlers();

}  // namespace lens::cli

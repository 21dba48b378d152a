// Exit statuses and the one mapping from an error to one; the signals that stop a run
// early. (0 done, 1 stopped early, 2 usage or configuration error: README, `man`.)
#pragma once

#include <string>

#include "pipeline/pipeline.h"
#include "util/result.h"

namespace lens::cli {

inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_stopped = 1;
inline constexpr int k_exit_usage = 2;

// 2 for what the user must fix (invalid_argument: flags, config, .env; configuration:
// credentials, endpoint, schema), 1 for everything else.
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

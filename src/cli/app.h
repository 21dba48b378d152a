// Entry point of the command line: parses, runs one command, returns the exit status
// (0 done, 1 stopped early, 2 usage or configuration error).
#pragma once

namespace lens::cli {

// Loads ./.env, parses argv, runs the command it names and returns its exit status
// (exit_status.h). Errors go to stderr, redacted; nothing throws out of it (an unexpected
// exception is reported as an internal error, status 1). Call once, from main.
[[nodiscard]] int run_cli(int argc, char** argv);

}  // namespace lens::cli

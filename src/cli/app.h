// Entry point of the command line: parses, runs one command, returns the exit status
// (0 done, 1 stopped early, 2 usage or configuration error).
#pragma once

namespace lens::cli {

[[nodiscard]] int run_cli(int argc, char** argv);

}  // namespace lens::cli

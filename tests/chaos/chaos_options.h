// lens_chaos's command line: what to break, how often, and how big the run is.
#pragma once

#include <cstdint>
#include <string>

namespace lens::chaos {

struct Options {
  std::string db = "sqlite";  // sqlite | postgres
  std::int64_t exchanges = 20'000;
  int workers = 1;
  int kills = 5;
  int pg_restarts = -1;          // -1: 1 with postgres, 0 with sqlite
  int pauses = 0;                // SIGSTOP a worker this many times ...
  double pause_seconds = 15;     // ... for this long (the lease is 6 s), then SIGCONT
  double kill_every = 0;         // > 0: a SIGKILL every this many seconds instead of --kills
  double restart_every = 0;      // > 0: a PostgreSQL restart every this many seconds instead
  double partition_seconds = 0;  // > 0: cut worker 0's link once for this long ...
  double partition_at = 0.4;     // ... when this share of the exchanges is done
  std::uint64_t seed = 0;        // 0: random (printed, so a failure can be replayed)
  int dimensions = 32;
  int batch_size = 64;
  int timeout = 2;
  double rpm = 3000;
  double max_seconds = 900;
  std::string summary;  // append the JSON summary to this file
  bool keep = false;
};

extern const char* const k_usage;

// Throws std::invalid_argument naming the bad argument.
Options parse(int argc, char** argv);

}  // namespace lens::chaos

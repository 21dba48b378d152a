#include "chaos_options.h"

#include <stdexcept>

namespace lens::chaos {

const char* const k_usage =
    "usage: lens_chaos [--db sqlite|postgres] [--exchanges N] [--workers N] [--kills N] [--pg-restarts N]\n"
    "                  [--pauses N] [--pause-seconds S] [--kill-every S] [--restart-every S]\n"
    "                  [--partition-seconds S] [--partition-at FRACTION]\n"
    "                  [--seed N] [--dimensions N] [--batch-size N] [--timeout S] [--rpm N]\n"
    "                  [--max-seconds S] [--summary FILE] [--keep]\n";

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto v = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--db")
      o.db = v();
    else if (a == "--exchanges")
      o.exchanges = std::stoll(v());
    else if (a == "--workers")
      o.workers = std::stoi(v());
    else if (a == "--kills")
      o.kills = std::stoi(v());
    else if (a == "--pg-restarts")
      o.pg_restarts = std::stoi(v());
    else if (a == "--pauses")
      o.pauses = std::stoi(v());
    else if (a == "--pause-seconds")
      o.pause_seconds = std::stod(v());
    else if (a == "--kill-every")
      o.kill_every = std::stod(v());
    else if (a == "--restart-every")
      o.restart_every = std::stod(v());
    else if (a == "--partition-seconds")
      o.partition_seconds = std::stod(v());
    else if (a == "--partition-at")
      o.partition_at = std::stod(v());
    else if (a == "--seed")
      o.seed = std::stoull(v());
    else if (a == "--dimensions")
      o.dimensions = std::stoi(v());
    else if (a == "--batch-size")
      o.batch_size = std::stoi(v());
    else if (a == "--timeout")
      o.timeout = std::stoi(v());
    else if (a == "--rpm")
      o.rpm = std::stod(v());
    else if (a == "--max-seconds")
      o.max_seconds = std::stod(v());
    else if (a == "--summary")
      o.summary = v();
    else if (a == "--keep")
      o.keep = true;
    else
      throw std::invalid_argument("unknown argument " + a);
  }
  if (o.db != "sqlite" && o.db != "postgres") throw std::invalid_argument("--db must be sqlite or postgres");
  if (o.pg_restarts < 0) o.pg_restarts = o.db == "postgres" ? 1 : 0;
  if (o.db == "sqlite" && o.pg_restarts > 0) throw std::invalid_argument("--pg-restarts needs --db postgres");
  if ((o.restart_every > 0 || o.partition_seconds > 0) && o.db != "postgres")
    throw std::invalid_argument("--restart-every and --partition-seconds need --db postgres");
  if (o.partition_seconds > 0 && o.workers < 2)
    throw std::invalid_argument("--partition-seconds needs --workers >= 2 (the others take over)");
  if (o.workers < 1 || o.exchanges < 100) throw std::invalid_argument("--workers >= 1, --exchanges >= 100");
  return o;
}

}  // namespace lens::chaos

// libFuzzer target: configuration resolution with an arbitrary lens-embed.toml, both phases
// (cli/raw_config.h resolve_config, then cli/settings.h make_settings); any outcome but a
// crash or an uncaught exception is fine.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli/raw_config.h"
#include "cli/settings.h"

namespace {

void both_phases(const lens::cli::Flags& flags) {
  auto raw = lens::cli::resolve_config(flags);
  if (!raw) return;
  (void)lens::cli::describe(*raw);
  (void)lens::cli::make_settings(*raw, {.provider = true, .run = true});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/dev/shm/lens-config-fuzz-" + std::to_string(::getpid()) + ".toml";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  ::clearenv();  // only the file speaks
  lens::cli::Flags flags;
  flags.config_path = path;
  both_phases(flags);
  // The same file again, with a provider chosen on the command line.
  flags.provider = "supermind";
  both_phases(flags);
  return 0;
}

// libFuzzer target: configuration resolution (cli/config.h resolve_config) with an
// arbitrary lens-embed.toml; any outcome but a crash or an uncaught exception is fine.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/dev/shm/lens-config-fuzz-" + std::to_string(::getpid()) + ".toml";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  ::clearenv();  // only the file speaks
  lens::cli::Flags flags;
  flags.config_path = path;
  auto config = lens::cli::resolve_config(flags);
  if (config) (void)lens::cli::describe(*config);
  // The same file again, with a provider chosen on the command line.
  flags.provider = "supermind";
  (void)lens::cli::resolve_config(flags);
  return 0;
}

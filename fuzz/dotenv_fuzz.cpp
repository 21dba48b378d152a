// libFuzzer target: the .env parser (cli/dotenv.h) on arbitrary file contents. It must
// never crash, and never override a variable that is already set (CONTRACT §5).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cli/dotenv.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // load_dotenv reads a path: the input goes through a per-process file on tmpfs.
  static const std::string path = "/dev/shm/lens-dotenv-fuzz-" + std::to_string(::getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  // A sentinel that every input may try to set: it must keep its value.
  ::clearenv();
  ::setenv("LENS_FUZZ_SENTINEL", "kept", 1);
  ::setenv("PATH", "/usr/bin", 1);
  (void)lens::cli::load_dotenv(path);
  const char* v = std::getenv("LENS_FUZZ_SENTINEL");
  if (!v || std::strcmp(v, "kept") != 0) std::abort();
  ::clearenv();  // variables the input set must not pile up across runs
  return 0;
}

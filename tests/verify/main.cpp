// lens_verify: checks that a lens-embed database holds exactly one correct row (or one
// failure with a reason) per eligible exchange. Exit 0 verified, 1 not, 2 usage.
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "verifier.h"

namespace {

constexpr const char* k_usage =
    "usage: lens_verify --db URL [--provider NAME] [--model NAME] [--dimensions N]\n"
    "                   [--max-input-tokens N] [--vectors stand-in|local-hash] [--allow-reason R]...\n"
    "Checks every eligible exchange: one row with the right answer id, sha256, token count,\n"
    "truncated flag and the provider's exact vector, or one failure with a reason; no other rows.\n"
    "Prints a JSON report. Exit 0: verified; 1: problems found; 2: usage or database error.\n";

}  // namespace

int main(int argc, char** argv) {
  lens::verify::VerifyOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n%s", a.c_str(), k_usage);
        std::exit(2);
      }
      return argv[++i];
    };
    try {
      if (a == "--db")
        o.db = value();
      else if (a == "--provider")
        o.provider = value();
      else if (a == "--model")
        o.model = value();
      else if (a == "--dimensions")
        o.dimensions = std::stoi(value());
      else if (a == "--max-input-tokens")
        o.max_input_tokens = std::stoi(value());
      else if (a == "--allow-reason")
        o.allowed_reasons.insert(value());
      else if (a == "--vectors") {
        const std::string v = value();
        if (v == "stand-in")
          o.vectors = lens::verify::VectorSource::stand_in;
        else if (v == "local-hash")
          o.vectors = lens::verify::VectorSource::local_hash;
        else
          throw std::invalid_argument(v);
      } else if (a == "--help" || a == "-h") {
        std::fputs(k_usage, stdout);
        return 0;
      } else {
        std::fprintf(stderr, "unknown argument %s\n%s", a.c_str(), k_usage);
        return 2;
      }
    } catch (const std::exception&) {
      std::fprintf(stderr, "bad value for %s\n%s", a.c_str(), k_usage);
      return 2;
    }
  }
  if (o.db.empty()) {
    std::fputs(k_usage, stderr);
    return 2;
  }
  const auto report = lens::verify::verify(o);
  std::printf("%s\n", report.to_json().c_str());
  if (!report.error.empty()) return 2;
  return report.ok() ? 0 : 1;
}

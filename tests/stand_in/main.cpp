// lens_stand_in_provider: runs the stand-in OpenAI-compatible server until SIGINT/SIGTERM.
// Prints "port=<N>" on stdout once it accepts connections.
#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>

#include "stand_in_server.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

struct Flag {
  std::string help;
  std::function<void(const std::string&)> set;
  bool is_switch = false;
};

}  // namespace

int main(int argc, char** argv) {
  using lens::stand_in::StandInOptions;
  StandInOptions o;
  std::string port_file;
  std::map<std::string, Flag> flags;
  auto num = [&](const char* name, double& v, const char* help) {
    flags[name] = {help, [&v](const std::string& s) { v = std::stod(s); }};
  };
  auto integer = [&](const char* name, auto& v, const char* help) {
    flags[name] = {help, [&v](const std::string& s) {
                     v = static_cast<std::remove_reference_t<decltype(v)>>(std::stoll(s));
                   }};
  };
  auto text = [&](const char* name, std::string& v, const char* help) {
    flags[name] = {help, [&v](const std::string& s) { v = s; }};
  };
  auto sw = [&](const char* name, bool& v, bool value, const char* help) {
    flags[name] = {help, [&v, value](const std::string&) { v = value; }, true};
  };
  text("--host", o.host, "address to listen on (default 127.0.0.1)");
  integer("--port", o.port, "port (default 0: any free port)");
  text("--port-file", port_file, "also write the port to this file once listening");
  integer("--threads", o.threads, "worker threads (default 512; one per keep-alive connection)");
  integer("--dimensions", o.default_dimensions, "dimensions when the request sends none (default 1536)");
  text("--models", o.models, "comma-separated known models; others get 404 (default: any)");
  text("--api-key", o.api_key, "require Authorization: Bearer KEY (else 401)");
  sw("--bytes-tokens", o.exact_tokens, false, "count tokens as ceil(bytes/4) instead of cl100k_base");
  num("--latency-ms", o.latency_ms, "latency before each answer");
  num("--latency-jitter-ms", o.latency_jitter_ms, "uniform extra latency in [0, N]");
  num("--latency-per-1k-tokens-ms", o.latency_per_1k_tokens_ms, "extra latency per 1000 input tokens");
  num("--rpm", o.rpm, "requests per minute limit (0: none)");
  num("--tpm", o.tpm, "tokens per minute limit (0: none)");
  num("--burst-seconds", o.burst_seconds, "bucket size in seconds of refill (default 1)");
  sw("--retry-after-headers", o.retry_after_headers, true, "send retry-after and retry-after-ms on 429");
  sw("--frozen-buckets", o.frozen_buckets, true, "the rate-limit buckets never refill (deterministic 429s)");
  sw("--quota-exhausted", o.quota_exhausted, true, "answer every request with 429 insufficient_quota");
  integer("--max-input-tokens", o.max_input_tokens,
          "longer inputs get the context-length 400 (default 8191)");
  text("--reject-marker", o.reject_marker, "inputs containing this text get the context-length 400");
  sw("--float-only", o.float_only, true, "ignore encoding_format, always answer float arrays");
  sw("--reject-base64", o.reject_base64, true, "400 for encoding_format=base64");
  sw("--shuffle", o.shuffle, true, "answer data[] in a random order");
  num("--p-429", o.p_429, "probability of an injected 429");
  num("--p-500", o.p_500, "probability of a 500");
  num("--p-502", o.p_502, "probability of a 502 (HTML body)");
  num("--p-503", o.p_503, "probability of a 503");
  num("--p-reset", o.p_reset, "probability of a TCP reset before answering");
  num("--p-hang", o.p_hang, "probability of hanging for --hang-ms, then a reset");
  num("--p-malformed", o.p_malformed, "probability of a 200 whose body is not JSON");
  num("--p-truncated", o.p_truncated, "probability of a 200 whose body is cut in half");
  num("--p-short", o.p_short, "probability of a 200 missing one embedding");
  num("--p-nan", o.p_nan, "probability of a 200 with a NaN value");
  num("--p-bad-dims", o.p_bad_dims, "probability of a 200 with one embedding a value short");
  integer("--hang-ms", o.hang_ms, "how long a hang lasts (default 30000)");
  integer("--fault-limit", o.fault_limit, "at most this many injected faults (default -1: no limit)");
  integer("--seed", o.seed, "random seed (default 1)");
  flags["--batch"] = {
      "Batch API option KEY=VALUE (repeatable; keys in stand_in_batch.h, e.g. completion_ms=500)",
      [&o](const std::string& s) {
        const auto eq = s.find('=');
        if (eq == std::string::npos ||
            !lens::stand_in::set_batch_option(o.batch, s.substr(0, eq), s.substr(eq + 1))) {
          throw std::invalid_argument(s);
        }
      }};

  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: lens_stand_in_provider [flags]\n");
      for (const auto& [name, f] : flags)
        std::printf("  %-28s %s\n", (name + (f.is_switch ? "" : " N")).c_str(), f.help.c_str());
      return 0;
    }
    std::string value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto it = flags.find(arg);
    if (it == flags.end()) {
      std::fprintf(stderr, "unknown flag %s (see --help)\n", arg.c_str());
      return 2;
    }
    if (!it->second.is_switch && value.empty()) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        return 2;
      }
      value = argv[++i];
    }
    try {
      it->second.set(value);
    } catch (const std::exception&) {
      std::fprintf(stderr, "bad value for %s: %s\n", arg.c_str(), value.c_str());
      return 2;
    }
  }

  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  lens::stand_in::StandInServer server(o);
  const int port = server.start();
  if (port <= 0) {
    std::fprintf(stderr, "stand-in: cannot listen on %s:%d\n", o.host.c_str(), o.port);
    return 1;
  }
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
      std::fprintf(f, "%d\n", port);
      std::fclose(f);
      std::rename(tmp.c_str(), port_file.c_str());
    }
  }
  std::printf("port=%d\n", port);
  std::fflush(stdout);
  while (!g_stop)
    ::usleep(100'000);
  server.stop();
  return 0;
}

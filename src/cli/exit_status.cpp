// Exit statuses and signal handling.
#include "cli/exit_status.h"

#include <unistd.h>
#include <csignal>
#include <cstdio>

#include "util/redact.h"

namespace lens::cli {
namespace {

pipeline::StopFlag g_stop{0};

extern "C" void on_signal(int) {
  // Second signal: leave at once. Everything committed is already durable.
  if (g_stop.fetch_add(1) >= 1) _exit(k_exit_stopped);
}

}  // namespace

int exit_status(util::ErrorCode code) {
  const bool users_to_fix = code == util::ErrorCode::invalid_argument ||
                            code == util::ErrorCode::configuration || code == util::ErrorCode::not_found;
  return users_to_fix ? k_exit_usage : k_exit_stopped;
}

int report(const util::Error& error) {
  std::fprintf(stderr, "lens-embed: %s\n", util::redact(error.message).c_str());
  return exit_status(error.code);
}

int usage_error(const std::string& message) {
  return report(util::Error{util::ErrorCode::invalid_argument, message});
}

const pipeline::StopFlag& stop_flag() {
  return g_stop;
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

}  // namespace lens::cli

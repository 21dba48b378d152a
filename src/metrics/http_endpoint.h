// The metrics endpoint: an HTTP server of its own thread answering GET /metrics (the
// registry, rendered at each scrape) and GET /healthz. An adapter: the run never calls it;
// it only reads the registry the run updates.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "metrics/listen_address.h"
#include "metrics/registry.h"
#include "util/result.h"

namespace lens::metrics {

// nullopt while healthy; otherwise a short fixed reason ("provider circuit open"). It is
// sent to whoever asks: never a message, a URL or anything else that could hold a secret.
using HealthCheck = std::function<std::optional<std::string>()>;

class HttpEndpoint {
 public:
  // Listens on `address` and serves until destroyed:
  //   GET /metrics  200, text/plain; version=0.0.4: registry.render()
  //   GET /healthz  200 "ok" while health() is nullopt, else 503 "unhealthy: REASON"
  //   HEAD of both; anything else 404 (405 for other methods).
  // One connection at a time, each closed after its answer; a client gets 2 s to send its
  // request, so a stuck one delays a scrape by 2 s at most.
  // `registry` and `health` are used on the endpoint's thread and must outlive it.
  // On failure: configuration naming the address and the system's reason (in use,
  // permission denied, no such host).
  [[nodiscard]] static util::Result<std::unique_ptr<HttpEndpoint>> start(const ListenAddress& address,
                                                                         const Registry& registry,
                                                                         HealthCheck health);
  ~HttpEndpoint();  // stops listening, lets a request being answered finish, joins
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // The address actually bound (its port, when 0 was asked for, is the one the system chose).
  [[nodiscard]] const ListenAddress& address() const;

  class Impl;

 private:
  explicit HttpEndpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lens::metrics

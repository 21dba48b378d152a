// A plain HTTP/1.0 GET on 127.0.0.1, for the tests that read lens-embed's own endpoints
// (/metrics, /healthz): no client library, so the test sees the bytes the endpoint sent.
#pragma once

#include <string>

namespace lens::test {

struct HttpAnswer {
  int status = 0;  // 0: no answer (nothing listening, or not HTTP)
  std::string body;
};

// GET http://127.0.0.1:PORT/PATH; the endpoint closes after its answer. Blocks until then.
[[nodiscard]] HttpAnswer http_get(int port, const std::string& path);

}  // namespace lens::test

// A deliberately tiny HTTP/1.1 server for two read-only routes.
//
// Why not cpp-httplib (used by tests/stand_in): Debian ships it as a compiled library
// built with OpenSSL, zlib and brotli, so the .deb would gain three runtime dependencies
// for two GET routes, and a daemon would carry a general HTTP server (file serving,
// multipart, compression) where nothing but "read the first line, answer, close" is
// needed. This file parses the request line only, bounds the request (8 KiB, 2 s),
// answers with Connection: close (Prometheus reconnects per scrape, which on loopback
// costs nothing) and never blocks the run: the registry is read, never locked for long.
#include "metrics/http_endpoint.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "util/log.h"

namespace lens::metrics {
namespace {

constexpr std::size_t k_max_request = 8192;
constexpr std::chrono::milliseconds k_request_deadline{2000};

struct Answer {
  int status = 200;
  const char* reason = "OK";
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

std::string system_error(int err) {
  char buf[256] = {};
  return strerror_r(err, buf, sizeof buf);
}

// Reads until the end of the request head, the size cap, the deadline or EOF. Returns the
// first line ("" when none arrived complete).
std::string read_request_line(int fd) {
  std::string head;
  const auto deadline = std::chrono::steady_clock::now() + k_request_deadline;
  char buf[2048];
  while (head.size() < k_max_request && head.find("\r\n\r\n") == std::string::npos &&
         head.find("\n\n") == std::string::npos) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
            .count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    head.append(buf, static_cast<std::size_t>(n));
  }
  const auto eol = head.find('\n');
  if (eol == std::string::npos) return {};
  std::string line = head.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

void send_all(int fd, std::string_view data) {
  const auto deadline = std::chrono::steady_clock::now() + k_request_deadline;
  while (!data.empty() && std::chrono::steady_clock::now() < deadline) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      pollfd p{fd, POLLOUT, 0};
      (void)::poll(&p, 1, 100);
      continue;
    }
    if (n <= 0) return;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

class HttpEndpoint::Impl {
 public:
  Impl(int listen_fd, int wake_read, int wake_write, ListenAddress address, const Registry& registry,
       HealthCheck health)
      : listen_fd_(listen_fd),
        wake_read_(wake_read),
        wake_write_(wake_write),
        address_(std::move(address)),
        registry_(registry),
        health_(std::move(health)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~Impl() {
    stopping_ = true;
    const char x = 'x';
    (void)!::write(wake_write_, &x, 1);
    thread_.join();
    ::close(listen_fd_);
    ::close(wake_read_);
    ::close(wake_write_);
  }
  [[nodiscard]] const ListenAddress& address() const { return address_; }

 private:
  void serve() {
    while (!stopping_) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
      const int r = ::poll(fds, 2, -1);
      if (r < 0) {
        if (errno == EINTR) continue;
        util::log_warn("metrics endpoint: poll: {}", system_error(errno));
        return;
      }
      if (fds[1].revents != 0 || stopping_) return;
      if ((fds[0].revents & POLLIN) == 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;  // the client went away, or out of descriptors for a moment
      answer(fd);
      ::shutdown(fd, SHUT_WR);
      ::close(fd);
    }
  }

  void answer(int fd) {
    const std::string line = read_request_line(fd);
    // "METHOD TARGET HTTP/1.x"
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
    Answer a;
    bool head_only = false;
    if (sp2 == std::string::npos || line.compare(sp2 + 1, 5, "HTTP/") != 0) {
      a = {400, "Bad Request", "text/plain; charset=utf-8", "bad request\n"};
    } else {
      const std::string method = line.substr(0, sp1);
      std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
      if (const auto q = path.find('?'); q != std::string::npos) path.resize(q);
      head_only = method == "HEAD";
      if (method != "GET" && method != "HEAD") {
        a = {405, "Method Not Allowed", "text/plain; charset=utf-8", "only GET and HEAD\n"};
      } else if (path == "/metrics") {
        a.content_type = "text/plain; version=0.0.4; charset=utf-8";
        a.body = registry_.render();
      } else if (path == "/healthz") {
        if (auto unhealthy = health_()) {
          a = {503, "Service Unavailable", "text/plain; charset=utf-8", "unhealthy: " + *unhealthy + "\n"};
        } else {
          a.body = "ok\n";
        }
      } else {
        a = {404, "Not Found", "text/plain; charset=utf-8", "not found: try /metrics or /healthz\n"};
      }
    }
    std::string out = "HTTP/1.1 " + std::to_string(a.status) + " " + a.reason +
                      "\r\nContent-Type: " + a.content_type +
                      "\r\nContent-Length: " + std::to_string(a.body.size()) +
                      "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
    if (!head_only) out += a.body;
    send_all(fd, out);
  }

  int listen_fd_, wake_read_, wake_write_;
  ListenAddress address_;
  const Registry& registry_;
  HealthCheck health_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

HttpEndpoint::HttpEndpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpEndpoint::~HttpEndpoint() = default;

const ListenAddress& HttpEndpoint::address() const {
  return impl_->address();
}

util::Result<std::unique_ptr<HttpEndpoint>> HttpEndpoint::start(const ListenAddress& address,
                                                                const Registry& registry,
                                                                HealthCheck health) {
  auto fail = [&](const std::string& why) {
    return util::fail(util::ErrorCode::configuration, "cannot listen on " + address.text() + ": " + why);
  };
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (const int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return fail(gai_strerror(rc));
  int fd = -1;
  std::string last_error = "no address";
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = system_error(errno);
      continue;
    }
    // A restarted daemon must be able to listen again at once, while the connections
    // of its previous life linger in TIME_WAIT.
    const int on = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 16) == 0) break;
    last_error = system_error(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(found);
  if (fd < 0) return fail(last_error);

  ListenAddress bound = address;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET) bound.port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    if (ss.ss_family == AF_INET6) bound.port = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0) {
    const std::string why = system_error(errno);
    ::close(fd);
    return fail(why);
  }
  auto impl = std::make_unique<Impl>(fd, wake[0], wake[1], std::move(bound), registry, std::move(health));
  return std::unique_ptr<HttpEndpoint>(new HttpEndpoint(std::move(impl)));
}

}  // namespace lens::metrics

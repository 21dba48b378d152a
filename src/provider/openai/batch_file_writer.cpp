// The Batch API input file writer: each line is built in a reused buffer with the
// synchronous client's request body builder, checked against the limits, then written.
#include "provider/openai/batch_file_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "provider/openai/wire.h"

namespace lens::provider::openai {
namespace {

constexpr std::size_t k_flush_at = 1u << 20;

util::Error os_error(std::string_view what, const std::string& path) {
  return util::Error{util::ErrorCode::permanent,
                     std::string(what) + " " + path + ": " + std::strerror(errno)};
}

void build_line(std::string& line, std::string& body, std::string_view custom_id,
                std::span<const std::string_view> inputs, const BatchFileOptions& o) {
  build_request_body(body, o.model, inputs, o.encoding_format, o.dimensions);
  line.clear();
  line.reserve(body.size() + custom_id.size() + 96);
  line.append("{\"custom_id\":");
  append_json_string(line, custom_id);
  line.append(",\"method\":\"POST\",\"url\":");
  append_json_string(line, k_batch_endpoint);
  line.append(",\"body\":");
  line.append(body);
  line.append("}\n");
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

struct BatchFileWriter::Impl {
  std::string path;
  BatchFileOptions options;
  int fd = -1;
  std::string line, body, buffer;
  std::unordered_set<std::string> custom_ids;
  std::uint64_t bytes = 0;
  std::size_t requests = 0;
  std::size_t inputs = 0;
  bool broken = false;

  util::Status flush() {
    if (buffer.empty()) return {};
    if (!write_all(fd, buffer.data(), buffer.size())) {
      broken = true;
      return std::unexpected(os_error("cannot write", path));
    }
    buffer.clear();
    return {};
  }
};

BatchFileWriter::BatchFileWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

BatchFileWriter::~BatchFileWriter() {
  if (impl_ && impl_->fd >= 0) {
    (void)impl_->flush();
    ::close(impl_->fd);
  }
}

util::Result<std::unique_ptr<BatchFileWriter>> BatchFileWriter::create(std::string path,
                                                                       BatchFileOptions options) {
  if (options.model.empty())
    return util::fail(util::ErrorCode::invalid_argument, "no model for the batch file");
  if (options.encoding_format != "base64" && options.encoding_format != "float") {
    return util::fail(util::ErrorCode::invalid_argument,
                      "encoding_format must be base64 or float, not " + options.encoding_format);
  }
  auto impl = std::make_unique<Impl>();
  impl->fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (impl->fd < 0) return std::unexpected(os_error("cannot create", path));
  impl->path = std::move(path);
  impl->options = std::move(options);
  impl->buffer.reserve(k_flush_at + (64u << 10));
  return std::unique_ptr<BatchFileWriter>(new BatchFileWriter(std::move(impl)));
}

util::Result<bool> BatchFileWriter::append(std::string_view custom_id,
                                           std::span<const std::string_view> inputs) {
  Impl& m = *impl_;
  if (m.broken || m.fd < 0)
    return util::fail(util::ErrorCode::internal, "batch file " + m.path + " is closed");
  if (inputs.empty() || inputs.size() > 2048) {
    return util::fail(util::ErrorCode::invalid_argument,
                      "a batch request holds 1 to 2048 inputs, not " + std::to_string(inputs.size()));
  }
  if (custom_id.empty()) return util::fail(util::ErrorCode::invalid_argument, "empty custom_id");
  if (m.custom_ids.contains(std::string(custom_id))) {
    return util::fail(util::ErrorCode::invalid_argument,
                      "custom_id " + std::string(custom_id) + " is already in " + m.path);
  }
  build_line(m.line, m.body, custom_id, inputs, m.options);
  const BatchFileLimits& l = m.options.limits;
  if (l.max_requests == 0 || inputs.size() > l.max_inputs || m.line.size() > l.max_bytes) {
    return util::fail(util::ErrorCode::invalid_argument,
                      "request " + std::string(custom_id) + " (" + std::to_string(inputs.size()) +
                          " inputs, " + std::to_string(m.line.size()) +
                          " bytes) exceeds the batch file limits on its own");
  }
  if (m.requests + 1 > l.max_requests || m.inputs + inputs.size() > l.max_inputs ||
      m.bytes + m.line.size() > l.max_bytes) {
    return false;
  }
  m.buffer.append(m.line);
  if (m.buffer.size() >= k_flush_at) {
    if (auto st = m.flush(); !st) return std::unexpected(st.error());
  }
  m.custom_ids.emplace(custom_id);
  m.bytes += m.line.size();
  ++m.requests;
  m.inputs += inputs.size();
  return true;
}

util::Status BatchFileWriter::finish() {
  Impl& m = *impl_;
  if (m.fd < 0) return {};
  if (m.broken) return util::fail(util::ErrorCode::permanent, "batch file " + m.path + " had a write error");
  if (auto st = m.flush(); !st) return st;
  if (m.options.sync_on_finish && ::fsync(m.fd) != 0) {
    m.broken = true;
    return std::unexpected(os_error("cannot fsync", m.path));
  }
  if (::close(m.fd) != 0) {
    m.fd = -1;
    m.broken = true;
    return std::unexpected(os_error("cannot close", m.path));
  }
  m.fd = -1;
  if (m.options.sync_on_finish) {
    // The file's directory entry too, so a crash cannot leave the name without the file.
    const auto slash = m.path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : m.path.substr(0, slash);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)::fsync(dfd);
      ::close(dfd);
    }
  }
  return {};
}

const std::string& BatchFileWriter::path() const {
  return impl_->path;
}
std::uint64_t BatchFileWriter::bytes() const {
  return impl_->bytes;
}
std::size_t BatchFileWriter::requests() const {
  return impl_->requests;
}
std::size_t BatchFileWriter::inputs() const {
  return impl_->inputs;
}

std::uint64_t batch_line_bytes(std::string_view custom_id, std::span<const std::string_view> inputs,
                               const BatchFileOptions& options) {
  std::string line, body;
  build_line(line, body, custom_id, inputs, options);
  return line.size();
}

}  // namespace lens::provider::openai

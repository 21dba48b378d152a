// Pieces the stand-in's embeddings endpoint and its Batch API share: JSON escaping,
// OpenAI's error body, base64 of float vectors, and a TCP reset of a live connection.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace lens::stand_in {

std::string json_escape(std::string_view s);

// {"error":{"message","type","param","code"}} as OpenAI sends it; empty param/code: null.
std::string error_json(std::string_view message, std::string_view type, std::string_view param,
                       std::string_view code);

void append_base64(std::string& out, const unsigned char* p, std::size_t n);

// Sends a TCP reset on the connection to `peer_port` (cpp-httplib does not expose the
// socket): find the fd by its peer, set SO_LINGER 0, and dup2 /dev/null over it so the
// socket is closed (RST) while cpp-httplib's later writes and close hit /dev/null.
bool reset_connection(const std::string& peer_addr, int peer_port);
// The same with an orderly close (FIN): what was written before arrives, then the end.
bool drop_connection(const std::string& peer_addr, int peer_port);

}  // namespace lens::stand_in

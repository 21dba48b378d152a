// Parsing of embeddings responses and error bodies with simdjson's On-Demand API: the
// response is walked once, base64 vectors are decoded straight into the result.
#include <simdjson.h>

#include <cstring>
#include <string>
#include <vector>

#include "provider/openai/wire.h"

namespace lens::provider::openai {
namespace {

namespace od = simdjson::ondemand;

util::Error invalid(std::string what) {
  return util::Error{util::ErrorCode::invalid_response, "invalid response: " + std::move(what)};
}

// A vector of another size than expected (asked, or known for the model). The first one of an answer means
// the model behind the endpoint ignores `dimensions` (or is another model): configuration, every request
// would meet it. A later one (sizes differ within one answer) is a broken answer.
util::Error wrong_size(const std::string& got, int asked, std::size_t seen_before) {
  if (seen_before > 0)
    return invalid("embedding has " + got + " dimensions, expected " + std::to_string(asked));
  return util::Error{util::ErrorCode::configuration, "the provider answered vectors of " + got +
                                                         " dimensions where " + std::to_string(asked) +
                                                         " were expected"};
}

// True when every value is finite: NaN and Inf have all exponent bits set.
bool all_finite(const float* v, std::size_t n) {
  std::uint32_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, v + i, 4);
    bad |= static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

// The text of a base64 string value without unescaping it: base64 needs no escapes, so
// the raw bytes up to the closing quote are the value. "\/" (some encoders escape '/')
// makes this return false and the caller lets simdjson unescape.
bool raw_base64(od::value& v, const char* end, std::string_view& out) {
  od::raw_json_string raw;
  if (v.get_raw_json_string().get(raw)) return false;
  const char* p = raw.raw();
  if (p < end) {
    const char* q = static_cast<const char*>(std::memchr(p, '"', static_cast<std::size_t>(end - p)));
    if (q == nullptr) return false;
    const char* bs = static_cast<const char*>(std::memchr(p, '\\', static_cast<std::size_t>(q - p)));
    if (bs == nullptr) {
      out = std::string_view(p, static_cast<std::size_t>(q - p));
      return true;
    }
  }
  return false;
}

}  // namespace

struct ResponseParser::Impl {
  od::parser parser;
  std::vector<unsigned char> seen;
  std::vector<float> scratch;
  std::string unescaped;
};

ResponseParser::ResponseParser() : impl_(std::make_unique<Impl>()) {}
ResponseParser::~ResponseParser() = default;

util::Result<EmbedSuccess> ResponseParser::parse(std::string& body, std::size_t n_inputs,
                                                 std::optional<int> dimensions) {
  EmbedSuccess ok;
  if (auto parsed = parse_into(body, n_inputs, dimensions, ok); !parsed)
    return std::unexpected(parsed.error());
  return ok;
}

util::Status ResponseParser::parse_into(std::string& body, std::size_t n_inputs,
                                        std::optional<int> dimensions, EmbedSuccess& ok) try {
  Impl& m = *impl_;
  ok.dimensions = 0;
  ok.prompt_tokens = 0;
  ok.vectors.clear();  // keeps its capacity: one buffer serves every line of a batch file
  if (body.capacity() < body.size() + simdjson::SIMDJSON_PADDING) {
    body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  }
  const char* end = body.data() + body.size();
  od::document doc;
  if (auto err = m.parser.iterate(body.data(), body.size(), body.capacity()).get(doc)) {
    return std::unexpected(invalid(std::string("not JSON (") + simdjson::error_message(err) + ")"));
  }
  od::object root;
  if (doc.get_object().get(root)) return std::unexpected(invalid("not a JSON object"));

  int dims = dimensions.value_or(0);
  std::size_t count = 0;
  bool have_data = false;
  m.seen.assign(n_inputs, 0);
  bool allocated = false;
  auto allocate = [&]() {
    ok.vectors.resize(n_inputs * static_cast<std::size_t>(dims));
    allocated = true;
  };

  for (auto field_r : root) {
    od::field field;
    if (auto err = std::move(field_r).get(field))
      return std::unexpected(invalid(simdjson::error_message(err)));
    const od::raw_json_string key = field.key();
    if (key == "data") {
      have_data = true;
      od::array arr;
      if (field.value().get_array().get(arr)) return std::unexpected(invalid("\"data\" is not an array"));
      for (auto item_r : arr) {
        od::object item;
        if (item_r.get_object().get(item)) return std::unexpected(invalid("a data item is not an object"));
        std::int64_t index = -1;
        bool have_vector = false;
        bool vector_in_scratch = false;
        std::string_view b64;
        bool is_b64 = false;
        for (auto f_r : item) {
          od::field f;
          if (auto err = std::move(f_r).get(f)) return std::unexpected(invalid(simdjson::error_message(err)));
          const od::raw_json_string k = f.key();
          if (k == "index") {
            if (f.value().get_int64().get(index))
              return std::unexpected(invalid("\"index\" is not an integer"));
            if (index < 0 || static_cast<std::size_t>(index) >= n_inputs) {
              return std::unexpected(invalid("index " + std::to_string(index) + " out of range for " +
                                             std::to_string(n_inputs) + " inputs"));
            }
          } else if (k == "embedding") {
            od::value v = f.value();
            od::json_type type;
            if (v.type().get(type)) return std::unexpected(invalid("bad \"embedding\""));
            if (type == od::json_type::string) {
              if (!raw_base64(v, end, b64)) {
                std::string_view s;
                if (v.get_string().get(s)) return std::unexpected(invalid("bad base64 string"));
                m.unescaped.assign(s);
                b64 = m.unescaped;
              }
              is_b64 = true;
              have_vector = true;
            } else if (type == od::json_type::array) {
              od::array values;
              if (v.get_array().get(values)) return std::unexpected(invalid("bad \"embedding\" array"));
              // Straight into place when the slot is known; else through scratch.
              const bool direct = allocated && index >= 0;
              float* dst = direct ? ok.vectors.data() +
                                        static_cast<std::size_t>(index) * static_cast<std::size_t>(dims)
                                  : nullptr;
              std::size_t got = 0;
              if (!direct) m.scratch.clear();
              for (auto x_r : values) {
                double x;
                if (x_r.get_double().get(x))
                  return std::unexpected(invalid("an embedding value is not a number"));
                if (direct) {
                  if (got >= static_cast<std::size_t>(dims)) {
                    return std::unexpected(wrong_size("more than " + std::to_string(dims), dims, count));
                  }
                  dst[got] = static_cast<float>(x);
                } else {
                  m.scratch.push_back(static_cast<float>(x));
                }
                ++got;
              }
              if (direct && got != static_cast<std::size_t>(dims)) {
                return std::unexpected(wrong_size(std::to_string(got), dims, count));
              }
              vector_in_scratch = !direct;
              have_vector = true;
            } else {
              return std::unexpected(invalid("\"embedding\" is neither base64 nor an array"));
            }
          }
        }
        if (index < 0) return std::unexpected(invalid("a data item has no index"));
        if (!have_vector) return std::unexpected(invalid("a data item has no embedding"));
        const auto slot = static_cast<std::size_t>(index);
        if (m.seen[slot])
          return std::unexpected(invalid("index " + std::to_string(index) + " appears twice"));
        m.seen[slot] = 1;
        ++count;
        if (is_b64) {
          std::string_view text = b64;
          while (!text.empty() && text.back() == '=')
            text.remove_suffix(1);
          const std::size_t n_bytes = text.size() * 3 / 4;
          if (!allocated) {
            if (dims == 0) {
              if (n_bytes == 0 || n_bytes % 4)
                return std::unexpected(invalid("base64 embedding of odd length"));
              dims = static_cast<int>(n_bytes / 4);
            }
            allocate();
          }
          if (n_bytes != static_cast<std::size_t>(dims) * 4) {
            return std::unexpected(wrong_size(std::to_string(n_bytes / 4), dims, count - 1));
          }
          std::span<float> dst(ok.vectors.data() + slot * static_cast<std::size_t>(dims),
                               static_cast<std::size_t>(dims));
          bool finite = false;
          if (!decode_base64_floats(b64, dst, &finite))
            return std::unexpected(invalid("bad base64 in embedding"));
          if (!finite) {
            return std::unexpected(invalid("NaN or infinite value in embedding " + std::to_string(index)));
          }
        } else {
          if (vector_in_scratch) {
            if (!allocated) {
              if (dims == 0) {
                if (m.scratch.empty()) return std::unexpected(invalid("empty embedding"));
                dims = static_cast<int>(m.scratch.size());
              }
              allocate();
            }
            if (m.scratch.size() != static_cast<std::size_t>(dims)) {
              return std::unexpected(wrong_size(std::to_string(m.scratch.size()), dims, count - 1));
            }
            std::memcpy(ok.vectors.data() + slot * static_cast<std::size_t>(dims), m.scratch.data(),
                        m.scratch.size() * sizeof(float));
          }
          const float* v = ok.vectors.data() + slot * static_cast<std::size_t>(dims);
          if (!all_finite(v, static_cast<std::size_t>(dims))) {
            return std::unexpected(invalid("NaN or infinite value in embedding " + std::to_string(index)));
          }
        }
      }
    } else if (key == "usage") {
      od::object usage;
      if (field.value().get_object().get(usage)) continue;
      for (auto u_r : usage) {
        od::field u;
        if (std::move(u_r).get(u)) break;
        if (u.key() == "prompt_tokens") {
          std::int64_t t = 0;
          if (!u.value().get_int64().get(t)) ok.prompt_tokens = t;
        }
      }
    } else if (key == "error") {
      return std::unexpected(invalid("an error object in a success response"));
    }
  }
  if (!have_data) return std::unexpected(invalid("no \"data\" array"));
  if (count != n_inputs) {
    return std::unexpected(
        invalid(std::to_string(count) + " embeddings for " + std::to_string(n_inputs) + " inputs"));
  }
  if (!allocated) allocate();  // zero inputs
  ok.dimensions = dims;
  return {};
} catch (const std::exception& e) {
  // simdjson is used without exceptions here, but allocation can still throw.
  return std::unexpected(invalid(std::string("parser failure: ") + e.what()));
}

ErrorBody parse_error_body(std::string_view body) {
  ErrorBody out;
  try {
    od::parser parser;
    const simdjson::padded_string padded(body);
    od::document doc;
    if (parser.iterate(padded).get(doc)) return out;
    od::object root;
    if (doc.get_object().get(root)) return out;
    auto read_string = [](od::value v, std::string& dst) {
      std::string_view s;
      if (!v.get_string().get(s)) dst.assign(s);
    };
    for (auto f_r : root) {
      od::field f;
      if (std::move(f_r).get(f)) break;
      const od::raw_json_string key = f.key();
      if (key == "error") {
        od::value v = f.value();
        od::json_type type;
        if (v.type().get(type)) break;
        if (type == od::json_type::string) {
          read_string(v, out.message);
          continue;
        }
        od::object err;
        if (v.get_object().get(err)) continue;
        for (auto e_r : err) {
          od::field e;
          if (std::move(e_r).get(e)) break;
          const od::raw_json_string k = e.key();
          if (k == "message")
            read_string(e.value(), out.message);
          else if (k == "type")
            read_string(e.value(), out.type);
          else if (k == "param")
            read_string(e.value(), out.param);
          else if (k == "code")
            read_string(e.value(), out.code);
        }
      } else if ((key == "message" || key == "detail") && out.message.empty()) {
        read_string(f.value(), out.message);
      }
    }
  } catch (const std::exception&) {
    // An unparseable error body: the status alone classifies it.
  }
  return out;
}

}  // namespace lens::provider::openai

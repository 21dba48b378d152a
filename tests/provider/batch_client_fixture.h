// The fixture of the Batch API client tests: an in-process stand-in (tests/support), a
// client pointed at it, and helpers that write, upload, poll and download test batches.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "provider/openai/batch_client.h"
#include "provider/openai/batch_file_writer.h"
#include "stand_in_vector.h"
#include "support/process.h"
#include "support/stand_in.h"

namespace lens::provider::openai::batch_test {

using std::chrono::milliseconds;
using util::ErrorCode;

inline constexpr const char* k_key = "sk-batch-test-3c9e1a7f5b2d8e4c";
inline constexpr const char* k_model = "text-embedding-3-small";

using test::stat_counter;

// One request of a test batch: its custom_id and inputs.
struct Req {
  std::string id;
  std::vector<std::string> inputs;
};

inline std::vector<Req> make_requests(int n, int per_request, const std::string& tag) {
  std::vector<Req> out;
  for (int i = 0; i < n; ++i) {
    Req r{tag + "-" + std::to_string(i), {}};
    for (int k = 0; k < per_request; ++k)
      r.inputs.push_back("message " + tag + " " + std::to_string(i) + "." + std::to_string(k) +
                         " \xC3\xA9t\xC3\xA9");
    out.push_back(std::move(r));
  }
  return out;
}

struct Results {
  std::map<std::string, std::vector<float>> vectors;
  std::map<std::string, EmbedFailure> failures;
  std::map<std::string, std::string> codes;
  std::vector<std::string> order;
  std::size_t duplicates = 0;
};

struct Fixture {
  test::StandIn server;
  test::TempDir temp{"batch_client"};
  const std::string dir = temp.path();
  std::unique_ptr<BatchClient> client;
  std::map<std::string, RequestShape> shapes;
  std::map<std::string, std::vector<std::string>> inputs_of;
  int dims = 8;

  explicit Fixture(stand_in::StandInOptions so = {}, BatchClientOptions bo = {}, std::string key = k_key)
      : server([&] {
          so.api_key = k_key;
          return so;
        }()) {
    EXPECT_TRUE(server.ok());
    OpenAiOptions o;
    o.base_url = server.base_url() + "/";  // a trailing slash is dropped
    o.api_key = std::move(key);
    o.model = k_model;
    o.request_timeout = milliseconds(10'000);
    auto made = make_batch_client(o, bo);
    EXPECT_TRUE(made) << (made ? "" : made.error().error.message);
    if (made) client = std::move(*made);
  }

  // Writes `reqs` to a JSONL file and uploads it as `name`.
  FileObject upload(const std::vector<Req>& reqs, const std::string& name,
                    const std::string& format = "base64") {
    BatchFileOptions fo;
    fo.model = k_model;
    fo.encoding_format = format;
    fo.dimensions = dims;
    fo.sync_on_finish = false;
    auto w = BatchFileWriter::create(dir + "/" + name, fo);
    EXPECT_TRUE(w);
    for (const auto& r : reqs) {
      std::vector<std::string_view> views(r.inputs.begin(), r.inputs.end());
      auto added = (*w)->append(r.id, views);
      EXPECT_TRUE(added && *added);
      shapes[r.id] = RequestShape{r.inputs.size(), dims};
      inputs_of[r.id] = r.inputs;
    }
    EXPECT_TRUE((*w)->finish());
    auto f = client->upload_file(dir + "/" + name, name);
    EXPECT_TRUE(f) << (f ? "" : f.error().error.message);
    if (f) {
      EXPECT_EQ(f->bytes, static_cast<std::int64_t>((*w)->bytes()));
    }
    return f ? *f : FileObject{};
  }

  BatchObject create(const std::string& file_id, const std::string& key) {
    auto b = client->create_batch(file_id, {{"lens_batch", key}});
    EXPECT_TRUE(b) << (b ? "" : b.error().error.message);
    return b ? *b : BatchObject{};
  }

  // Polls until the batch is final (the stand-in's batches move on in milliseconds).
  BatchObject wait_final(const std::string& id) {
    for (int i = 0; i < 2000; ++i) {
      auto b = client->get_batch(id);
      EXPECT_TRUE(b) << (b ? "" : b.error().error.message);
      if (!b) return {};
      if (is_terminal(b->status)) return *b;
      std::this_thread::sleep_for(milliseconds(5));
    }
    ADD_FAILURE() << "batch " << id << " never ended";
    return {};
  }

  BatchStatusResult download(const std::string& file_id, Results& r, DownloadProgress& progress,
                             std::uint64_t skip = 0) {
    auto shape = [this](std::string_view id) -> std::optional<RequestShape> {
      auto it = shapes.find(std::string(id));
      if (it == shapes.end()) return std::nullopt;
      return it->second;
    };
    auto on_line = [&r](const BatchResultLine& l) {
      const std::string id(l.custom_id);
      if (r.vectors.contains(id) || r.failures.contains(id)) ++r.duplicates;
      r.order.push_back(id);
      if (l.success) {
        r.vectors[id] = l.success->vectors;
      } else {
        r.failures[id] = *l.failure;
      }
      r.codes[id] = std::string(l.error_code);
      return true;
    };
    return client->download_results(file_id, shape, on_line, progress, skip);
  }

  // Every vector of `r` is the stand-in's vector of its input, bit for bit.
  void expect_exact(const Results& r) {
    for (const auto& [id, got] : r.vectors) {
      const auto& ins = inputs_of.at(id);
      ASSERT_EQ(got.size(), ins.size() * static_cast<std::size_t>(dims)) << id;
      std::vector<float> want(static_cast<std::size_t>(dims));
      for (std::size_t k = 0; k < ins.size(); ++k) {
        stand_in::stand_in_vector(ins[k], want);
        ASSERT_TRUE(std::equal(want.begin(), want.end(), got.begin() + static_cast<long>(k) * dims)) << id;
      }
    }
  }
};

}  // namespace lens::provider::openai::batch_test

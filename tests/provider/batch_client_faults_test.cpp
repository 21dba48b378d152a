// The Batch API client's failures against the in-process stand-in: 503s and resets while
// polling and downloading (with resume), the enqueued-token limit, a provider without
// the Batch API, a wrong key, no server, a malformed result file, the cancel flag, the
// stand-in's control endpoint, and a large output file read in flat memory.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include "batch_client_fixture.h"
#include "util/sha256.h"

namespace lens::provider::openai::batch_test {
namespace {

TEST(BatchClient, FaultsWhilePollingAreTransient) {
  Fixture f;
  const BatchObject b = f.create(f.upload(make_requests(2, 1, "p"), "p.jsonl").id, "p");
  f.server.batch().update([](stand_in::BatchOptions& o) { o.poll_503.next = 1; });
  auto first = f.client->get_batch(b.id);
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().error.code, ErrorCode::transient);
  EXPECT_EQ(first.error().http_status, 503);
  // Every poll reset for a while (curl itself retries a request once when a reused
  // connection turns out dead, so a single reset may go unseen).
  f.server.batch().update([](stand_in::BatchOptions& o) { o.poll_reset.p = 1; });
  auto second = f.client->list_batches();
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().error.code, ErrorCode::transient);
  EXPECT_EQ(second.error().http_status, 0);  // no answer at all
  f.server.batch().update([](stand_in::BatchOptions& o) { o.poll_reset.p = 0; });
  EXPECT_EQ(f.wait_final(b.id).status, BatchStatus::completed);
  EXPECT_EQ(f.server.stat("batch_poll_503"), 1);
  EXPECT_GE(f.server.stat("batch_poll_reset"), 1);
}

TEST(BatchClient, ResetMidDownloadIsTransientAndResumesWithoutRedelivering) {
  stand_in::StandInOptions so;
  so.batch.shuffle_output = true;
  Fixture f(so);
  f.dims = 256;
  const auto reqs = make_requests(300, 2, "r");
  const BatchObject done = f.wait_final(f.create(f.upload(reqs, "r.jsonl").id, "r").id);
  ASSERT_EQ(done.status, BatchStatus::completed);
  f.server.batch().update([](stand_in::BatchOptions& o) {
    o.download_503.next = 1;
    o.download_reset.next = 1;
    o.download_drop.next = 1;
    o.download_reset_after_bytes = 300'000;  // of about 1.1 MB
  });
  Results r;
  DownloadProgress p;
  auto busy = f.download(done.output_file_id, r, p);
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().error.code, ErrorCode::transient);
  EXPECT_EQ(busy.error().http_status, 503);
  EXPECT_TRUE(r.vectors.empty());

  // A TCP reset: what arrived before it may be lost with it, so only the class is sure.
  Results lost;
  auto reset = f.download(done.output_file_id, lost, p);
  ASSERT_FALSE(reset);
  EXPECT_EQ(reset.error().error.code, ErrorCode::transient) << reset.error().error.message;
  EXPECT_EQ(reset.error().http_status, 0);
  EXPECT_LT(lost.vectors.size(), 300u);

  // A connection closed midway: the lines before it are delivered, a retry skips them.
  auto cut = f.download(done.output_file_id, r, p);
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().error.code, ErrorCode::transient) << cut.error().error.message;
  EXPECT_GT(r.vectors.size(), 0u);
  EXPECT_LT(r.vectors.size(), 300u);
  EXPECT_EQ(p.read.lines, r.vectors.size());
  EXPECT_LE(p.bytes, 300'000u);

  auto rest = f.download(done.output_file_id, r, p, p.bytes);
  ASSERT_TRUE(rest) << rest.error().error.message;
  EXPECT_EQ(r.vectors.size(), 300u);
  EXPECT_EQ(r.duplicates, 0u);
  f.expect_exact(r);
  EXPECT_EQ(f.server.stat("batch_download_reset"), 1);
  EXPECT_EQ(f.server.stat("batch_download_drop"), 1);
}

TEST(BatchClient, EnqueuedTokenLimitFailsTheBatchTransiently) {
  stand_in::StandInOptions so;
  so.exact_tokens = false;      // ceil(bytes/4): token counts the test can compute
  so.batch.completion_ms = -1;  // batches stay enqueued until completed by hand
  Fixture f(so);
  const auto reqs = make_requests(10, 1, "t");
  std::int64_t tokens = 0;
  for (const auto& r : reqs)
    tokens += static_cast<std::int64_t>((r.inputs[0].size() + 3) / 4);
  // Room for one such file, not two.
  f.server.batch().update(
      [&](stand_in::BatchOptions& o) { o.queue_tokens = static_cast<double>(tokens) * 1.5; });
  const BatchObject first = f.create(f.upload(reqs, "t1.jsonl").id, "t1");
  auto running = f.client->get_batch(first.id);
  ASSERT_TRUE(running);
  ASSERT_EQ(running->status, BatchStatus::in_progress);
  EXPECT_EQ(f.server.stat("batch_enqueued_tokens"), tokens);

  const BatchObject refused =
      f.wait_final(f.create(f.upload(make_requests(10, 1, "u"), "t2.jsonl").id, "t2").id);
  ASSERT_EQ(refused.status, BatchStatus::failed);
  EXPECT_TRUE(refused.token_limit_exceeded());
  EXPECT_EQ(refused.failure().code, ErrorCode::transient);

  f.server.batch().complete(first.id);
  EXPECT_EQ(f.wait_final(first.id).status, BatchStatus::completed);
  // Room again: the same file submitted again is taken (and held, as the stand-in is told).
  const BatchObject later = f.create(refused.input_file_id, "t2-again");
  auto now = f.client->get_batch(later.id);
  ASSERT_TRUE(now);
  EXPECT_EQ(now->status, BatchStatus::in_progress);
}

TEST(BatchClient, ProviderWithoutBatchApiIsAConfigurationError) {
  stand_in::StandInOptions so;
  so.batch.enabled = false;
  Fixture f(so);
  auto created = f.client->create_batch("file-x", {});
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().error.code, ErrorCode::configuration);
  EXPECT_NE(created.error().error.message.find("without --batch-api"), std::string::npos)
      << created.error().error.message;
  auto listed = f.client->list_batches();
  ASSERT_FALSE(listed);
  EXPECT_EQ(listed.error().error.code, ErrorCode::configuration);
  const std::string path = f.dir + "/one.jsonl";
  std::ofstream(path) << "{}\n";
  auto up = f.client->upload_file(path, "one.jsonl");
  ASSERT_FALSE(up);
  EXPECT_EQ(up.error().error.code, ErrorCode::configuration);
}

TEST(BatchClient, WrongKeyIsConfigurationAndNeverShown) {
  Fixture f({}, {}, "sk-wrong-key-1234567890abcdef");
  auto listed = f.client->list_batches();
  ASSERT_FALSE(listed);
  EXPECT_EQ(listed.error().error.code, ErrorCode::configuration);
  EXPECT_EQ(listed.error().http_status, 401);
  EXPECT_EQ(listed.error().error.message.find("sk-wrong-key-1234567890abcdef"), std::string::npos);
}

TEST(BatchClient, NoServerIsTransient) {
  // A port nothing listens on: bound, read, closed.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  OpenAiOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/v1";
  o.api_key = k_key;
  auto client = make_batch_client(o);
  ASSERT_TRUE(client);
  auto b = (*client)->get_batch("batch_1");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().error.code, ErrorCode::transient);
  EXPECT_EQ(b.error().http_status, 0);
}

TEST(BatchClient, MalformedResultFileIsInvalidResponse) {
  Fixture f;
  const std::string path = f.dir + "/junk.jsonl";
  std::ofstream(path) << R"({"id":"1","custom_id":"a","response":{"status_code":200,"body":{"data":[]}}})"
                      << "\n"
                      << "<html>upstream error</html>\n";
  auto up = f.client->upload_file(path, "junk.jsonl");
  ASSERT_TRUE(up);
  f.shapes["a"] = RequestShape{1, 8};
  Results r;
  DownloadProgress p;
  // The stand-in serves an uploaded file's bytes as they are: the second line is not JSON.
  auto st = f.download(up->id, r, p);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().error.code, ErrorCode::invalid_response);
  ASSERT_EQ(r.failures.size(), 1u);  // the first line: a body with no embedding for its input
  EXPECT_EQ(r.failures["a"].error.code, ErrorCode::invalid_response);
}

TEST(BatchClient, CancelFlagStopsADownload) {
  std::atomic<bool> cancel{false};
  BatchClientOptions bo;
  bo.cancel = &cancel;
  Fixture f({}, bo);
  f.dims = 3072;
  const BatchObject done = f.wait_final(f.create(f.upload(make_requests(400, 1, "z"), "z.jsonl").id, "z").id);
  std::size_t seen = 0;
  DownloadProgress p;
  auto st = f.client->download_results(
      done.output_file_id,
      [&](std::string_view) {
        return std::optional<RequestShape>(RequestShape{1, 3072});
      },
      [&](const BatchResultLine&) {
        if (++seen == 10) cancel = true;
        return true;
      },
      p);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().error.code, ErrorCode::cancelled);
  EXPECT_LT(seen, 400u);
}

TEST(BatchClient, ControlEndpointSwitchesBehaviourAndBillingIsPerText) {
  Fixture f;
  httplib::Client http("127.0.0.1", f.server.port());
  auto set =
      http.Post("/control/batch", R"({"completion_ms": -1, "shuffle_output": true})", "application/json");
  ASSERT_TRUE(set);
  EXPECT_EQ(set->status, 200);
  auto bad = http.Post("/control/batch", R"({"no_such_option": 1})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);

  const auto reqs = make_requests(4, 1, "h");
  const BatchObject b = f.create(f.upload(reqs, "h.jsonl").id, "h");
  EXPECT_EQ(f.client->get_batch(b.id)->status, BatchStatus::in_progress);
  auto done = http.Post("/control/batch", R"({"action": "complete"})", "application/json");
  ASSERT_TRUE(done);
  EXPECT_EQ(f.wait_final(b.id).status, BatchStatus::completed);

  auto billed = http.Get("/stats/billed");
  ASSERT_TRUE(billed);
  for (const auto& r : reqs) {
    const std::string hex = util::to_hex(util::sha256(r.inputs[0]));
    EXPECT_NE(billed->body.find("\"" + hex + "\":{\"sync\":0,\"batch\":1}"), std::string::npos) << r.id;
  }
}

// /proc/self/status's VmHWM (peak resident set) in kB.
long peak_rss_kb() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("VmHWM:")) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

TEST(BatchClient, LargeOutputFileStreamsInFlatMemory) {
  Fixture f;
  f.dims = 3072;
  const int n = 10'000;
  const BatchObject done =
      f.wait_final(f.create(f.upload(make_requests(n, 1, "big"), "big.jsonl").id, "big").id);
  ASSERT_EQ(done.status, BatchStatus::completed);
  // Peak RSS from here on ("5" resets VmHWM to the current RSS).
  std::ofstream("/proc/self/clear_refs") << "5";
  const long before = peak_rss_kb();
  ASSERT_GT(before, 0);
  std::size_t lines = 0, exact = 0;
  std::vector<float> want(3072);
  DownloadProgress p;
  auto st = f.client->download_results(
      done.output_file_id,
      [&](std::string_view id) -> std::optional<RequestShape> {
        if (!f.shapes.contains(std::string(id))) return std::nullopt;
        return RequestShape{1, 3072};
      },
      [&](const BatchResultLine& l) {
        ++lines;
        if (!l.success) return true;
        stand_in::stand_in_vector(f.inputs_of.at(std::string(l.custom_id))[0], want);
        exact += std::equal(want.begin(), want.end(), l.success->vectors.begin());
        return true;
      },
      p);
  ASSERT_TRUE(st) << st.error().error.message;
  const long after = peak_rss_kb();
  EXPECT_EQ(lines, static_cast<std::size_t>(n));
  EXPECT_EQ(exact, static_cast<std::size_t>(n));
  EXPECT_GT(p.bytes, 160'000'000u);  // 10,000 × 3,072 float32 in base64: ~164 MB of JSON
  // Client and in-process server together; holding the file would take > 160 MB.
  EXPECT_LT(after - before, 100 * 1024) << "peak RSS grew by " << (after - before) / 1024 << " MB";
  RecordProperty("peak_rss_growth_kb", static_cast<int>(after - before));
}

TEST(BatchClient, LargeUploadIsSentFromDisk) {
  Fixture f;
  // About 120 MB of requests, written and then uploaded.
  const std::string text(40'000, 'w');
  BatchFileOptions fo;
  fo.model = k_model;
  fo.sync_on_finish = false;
  auto w = BatchFileWriter::create(f.dir + "/large.jsonl", fo);
  ASSERT_TRUE(w);
  for (int i = 0; i < 3000; ++i) {
    const std::string input = std::to_string(i) + text;
    const std::vector<std::string_view> inputs = {input};
    auto added = (*w)->append("u-" + std::to_string(i), inputs);
    ASSERT_TRUE(added && *added);
  }
  ASSERT_TRUE((*w)->finish());
  ASSERT_GT((*w)->bytes(), 120'000'000u);
  std::ofstream("/proc/self/clear_refs") << "5";
  const long before = peak_rss_kb();
  auto up = f.client->upload_file(f.dir + "/large.jsonl", "large.jsonl");
  const long after = peak_rss_kb();
  ASSERT_TRUE(up) << up.error().error.message;
  EXPECT_EQ(static_cast<std::uint64_t>(up->bytes), (*w)->bytes());
  EXPECT_EQ(f.server.stat("batch_upload_bytes"), static_cast<std::int64_t>((*w)->bytes()));
  // Client and in-process server together; holding the file would take > 120 MB.
  EXPECT_LT(after - before, 60 * 1024) << "peak RSS grew by " << (after - before) / 1024 << " MB";
  RecordProperty("peak_rss_growth_kb", static_cast<int>(after - before));
}

}  // namespace
}  // namespace lens::provider::openai::batch_test

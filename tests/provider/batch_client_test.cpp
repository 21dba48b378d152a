// The Batch API client against the in-process stand-in: files and batches through their
// whole life, every switchable behaviour of the stand-in classified as the driver needs
// it, vectors bit-exact, and a large output file read in flat memory.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "provider/openai/batch_client.h"
#include "provider/openai/batch_file_writer.h"
#include "stand_in_vector.h"
#include "support/process.h"
#include "support/stand_in.h"
#include "util/sha256.h"

namespace lens::provider::openai {
namespace {

using std::chrono::milliseconds;
using util::ErrorCode;

constexpr const char* k_key = "sk-batch-test-3c9e1a7f5b2d8e4c";
constexpr const char* k_model = "text-embedding-3-small";

using test::stat_counter;

// One request of a test batch: its custom_id and inputs.
struct Req {
  std::string id;
  std::vector<std::string> inputs;
};

std::vector<Req> make_requests(int n, int per_request, const std::string& tag) {
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

TEST(BatchClient, UploadCreatePollDownloadAndFindAgain) {
  Fixture f;
  const auto reqs = make_requests(40, 3, "a");
  const FileObject in = f.upload(reqs, "lens-batch-k1.jsonl");
  EXPECT_EQ(in.purpose, "batch");
  EXPECT_EQ(in.filename, "lens-batch-k1.jsonl");

  // After a crash: the upload is found by its name, the batch by its metadata.
  auto found = f.client->find_files("lens-batch-k1.jsonl");
  ASSERT_TRUE(found);
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].id, in.id);
  auto meta = f.client->get_file(in.id);
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->bytes, in.bytes);

  const BatchObject created = f.create(in.id, "k1");
  EXPECT_EQ(created.status, BatchStatus::validating);
  EXPECT_EQ(created.input_file_id, in.id);
  f.create(f.upload(make_requests(2, 1, "other"), "lens-batch-k2.jsonl").id, "k2");
  auto again = f.client->find_batches("lens_batch", "k1");
  ASSERT_TRUE(again);
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].id, created.id);

  const BatchObject done = f.wait_final(created.id);
  ASSERT_EQ(done.status, BatchStatus::completed);
  EXPECT_EQ(done.request_counts.total, 40);
  EXPECT_EQ(done.request_counts.completed, 40);
  EXPECT_EQ(done.request_counts.failed, 0);
  EXPECT_TRUE(done.error_file_id.empty());
  ASSERT_FALSE(done.output_file_id.empty());
  ASSERT_TRUE(done.completed_at);

  Results r;
  DownloadProgress p;
  ASSERT_TRUE(f.download(done.output_file_id, r, p));
  EXPECT_EQ(r.vectors.size(), 40u);
  EXPECT_EQ(r.duplicates, 0u);
  EXPECT_EQ(p.read.succeeded, 40u);
  auto out_meta = f.client->get_file(done.output_file_id);
  ASSERT_TRUE(out_meta);
  EXPECT_EQ(static_cast<std::uint64_t>(out_meta->bytes), p.bytes);
  f.expect_exact(r);

  const std::string stats = f.server.stats_json();
  EXPECT_EQ(stat_counter(stats, "billed_batch_inputs"), 40 * 3 + 2);
  EXPECT_EQ(stat_counter(stats, "billed_more_than_once"), 0);

  ASSERT_TRUE(f.client->delete_file(in.id));
  auto gone = f.client->get_file(in.id);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().error.code, ErrorCode::not_found);
  auto twice = f.client->delete_file(in.id);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().error.code, ErrorCode::not_found);
  EXPECT_EQ(f.client->find_files("lens-batch-k1.jsonl")->size(), 0u);
}

TEST(BatchClient, ShuffledOutputIsMatchedByCustomIdInFloatToo) {
  stand_in::StandInOptions so;
  so.batch.shuffle_output = true;
  Fixture f(so);
  const auto reqs = make_requests(60, 2, "s");
  const BatchObject done = f.wait_final(f.create(f.upload(reqs, "s.jsonl", "float").id, "s").id);
  ASSERT_EQ(done.status, BatchStatus::completed);
  Results r;
  DownloadProgress p;
  ASSERT_TRUE(f.download(done.output_file_id, r, p));
  ASSERT_EQ(r.vectors.size(), 60u);
  std::vector<std::string> file_order;
  for (const auto& q : reqs)
    file_order.push_back(q.id);
  EXPECT_NE(r.order, file_order);  // really shuffled
  f.expect_exact(r);
}

TEST(BatchClient, ValidationFailuresEndTheBatchFailedAndArePermanent) {
  Fixture f;
  f.server.batch().update([](stand_in::BatchOptions& o) { o.fail_validation = 1; });
  const BatchObject injected =
      f.wait_final(f.create(f.upload(make_requests(3, 1, "v"), "v.jsonl").id, "v").id);
  ASSERT_EQ(injected.status, BatchStatus::failed);
  EXPECT_TRUE(injected.failed_at);
  EXPECT_FALSE(injected.token_limit_exceeded());
  EXPECT_EQ(injected.failure().code, ErrorCode::permanent);

  // A file the stand-in really rejects: a custom_id twice, a line that is not JSON.
  const std::string path = f.dir + "/bad.jsonl";
  {
    std::ofstream out(path);
    const std::string line =
        R"({"custom_id":"x","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":["a"]}})";
    out << line << "\n" << line << "\n{not json\n";
  }
  auto up = f.client->upload_file(path, "bad.jsonl");
  ASSERT_TRUE(up);
  const BatchObject rejected = f.wait_final(f.create(up->id, "bad").id);
  ASSERT_EQ(rejected.status, BatchStatus::failed);
  ASSERT_EQ(rejected.errors.size(), 2u);
  EXPECT_EQ(rejected.errors[0].code, "duplicate_custom_id");
  EXPECT_EQ(rejected.errors[0].line, 2);
  EXPECT_EQ(rejected.errors[1].line, 3);
  EXPECT_EQ(rejected.failure().code, ErrorCode::permanent);
  EXPECT_EQ(f.server.stat("billed_batch_inputs"), 0);
}

TEST(BatchClient, PerRequestErrorsComeInTheErrorFileClassified) {
  stand_in::StandInOptions so;
  so.reject_marker = "TOO-LONG";
  Fixture f(so);
  auto reqs = make_requests(10, 2, "e");
  reqs[3].inputs[1] += " TOO-LONG";
  reqs[7].inputs[0] += " TOO-LONG";
  const BatchObject done = f.wait_final(f.create(f.upload(reqs, "e.jsonl").id, "e").id);
  ASSERT_EQ(done.status, BatchStatus::completed);
  EXPECT_EQ(done.request_counts.completed, 8);
  EXPECT_EQ(done.request_counts.failed, 2);
  Results r;
  DownloadProgress p;
  ASSERT_TRUE(f.download(done.error_file_id, r, p));
  ASSERT_EQ(r.failures.size(), 2u);
  for (const char* id : {"e-3", "e-7"}) {
    ASSERT_TRUE(r.failures.contains(id)) << id;
    EXPECT_EQ(r.failures[id].error.code, ErrorCode::bad_input);
    EXPECT_TRUE(r.failures[id].context_length);
    EXPECT_EQ(r.failures[id].http_status, 400);
  }
  ASSERT_TRUE(f.download(done.output_file_id, r, p));
  EXPECT_EQ(r.vectors.size(), 8u);
  f.expect_exact(r);

  // Every request a 500: all in the error file, transient, nothing billed.
  f.server.batch().update([](stand_in::BatchOptions& o) { o.p_request_500 = 1; });
  const std::string before = f.server.stats_json();
  const BatchObject all500 = f.wait_final(f.create(f.upload(make_requests(4, 1, "f"), "f.jsonl").id, "f").id);
  ASSERT_EQ(all500.status, BatchStatus::completed);
  EXPECT_TRUE(all500.output_file_id.empty());
  Results r500;
  ASSERT_TRUE(f.download(all500.error_file_id, r500, p));
  ASSERT_EQ(r500.failures.size(), 4u);
  for (const auto& [id, fail] : r500.failures) {
    EXPECT_EQ(fail.error.code, ErrorCode::transient) << id;
    EXPECT_EQ(fail.http_status, 500) << id;
  }
  EXPECT_EQ(f.server.stat("billed_batch_inputs"), stat_counter(before, "billed_batch_inputs"));
}

TEST(BatchClient, ExpiredBatchesBillTheDoneAndReturnTheRestAsBatchExpired) {
  stand_in::StandInOptions so;
  so.batch.completion_ms = -1;  // held until told
  Fixture f(so);
  const BatchObject b = f.create(f.upload(make_requests(20, 1, "x"), "x.jsonl").id, "x");
  auto running = f.client->get_batch(b.id);
  ASSERT_TRUE(running);
  EXPECT_EQ(running->status, BatchStatus::in_progress);
  EXPECT_EQ(running->request_counts.total, 20);
  EXPECT_EQ(running->request_counts.completed, 0);

  f.server.batch().expire(b.id, 0.25);
  const BatchObject done = f.wait_final(b.id);
  ASSERT_EQ(done.status, BatchStatus::expired);
  EXPECT_TRUE(done.expired_at);
  EXPECT_EQ(done.request_counts.completed, 5);
  EXPECT_EQ(done.request_counts.failed, 15);
  Results r;
  DownloadProgress p;
  ASSERT_TRUE(f.download(done.output_file_id, r, p));
  ASSERT_TRUE(f.download(done.error_file_id, r, p));
  EXPECT_EQ(r.vectors.size(), 5u);
  ASSERT_EQ(r.failures.size(), 15u);
  for (const auto& [id, fail] : r.failures) {
    EXPECT_EQ(fail.error.code, ErrorCode::transient) << id;
    EXPECT_EQ(r.codes[id], "batch_expired") << id;
  }
  EXPECT_EQ(r.duplicates, 0u);
  f.expect_exact(r);
  EXPECT_EQ(f.server.stat("billed_batch_inputs"), 5);

  // Expiry by the clock: a window that ends before any request ran.
  f.server.batch().update([](stand_in::BatchOptions& o) {
    o.completion_ms = 60'000;
    o.expire_ms = 0;
  });
  const BatchObject early = f.wait_final(f.create(f.upload(make_requests(3, 1, "y"), "y.jsonl").id, "y").id);
  ASSERT_EQ(early.status, BatchStatus::expired);
  EXPECT_EQ(early.request_counts.failed, 3);
  EXPECT_TRUE(early.output_file_id.empty());
}

TEST(BatchClient, CancelAndTheOutputsThatAreGone) {
  stand_in::StandInOptions so;
  so.batch.completion_ms = -1;
  Fixture f(so);
  const BatchObject b = f.create(f.upload(make_requests(5, 1, "c"), "c.jsonl").id, "c");
  auto cancelling = f.client->cancel_batch(b.id);
  ASSERT_TRUE(cancelling) << cancelling.error().error.message;
  EXPECT_EQ(cancelling->status, BatchStatus::cancelling);
  EXPECT_FALSE(is_terminal(cancelling->status));
  const BatchObject cancelled = f.wait_final(b.id);
  EXPECT_EQ(cancelled.status, BatchStatus::cancelled);
  EXPECT_TRUE(cancelled.cancelled_at);
  EXPECT_TRUE(cancelled.output_file_id.empty());
  auto unknown = f.client->get_batch("batch_nonexistent");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().error.code, ErrorCode::not_found);

  // An output file deleted by the provider (30 days later): not_found, not configuration.
  f.server.batch().update([](stand_in::BatchOptions& o) { o.completion_ms = 0; });
  const BatchObject done = f.wait_final(f.create(f.upload(make_requests(2, 1, "d"), "d.jsonl").id, "d").id);
  ASSERT_EQ(done.status, BatchStatus::completed);
  f.server.batch().update([](stand_in::BatchOptions& o) { o.outputs_deleted = true; });
  Results r;
  DownloadProgress p;
  auto gone = f.download(done.output_file_id, r, p);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().error.code, ErrorCode::not_found);
  EXPECT_EQ(gone.error().http_status, 404);
  EXPECT_TRUE(r.vectors.empty());
}

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

}  // namespace
}  // namespace lens::provider::openai

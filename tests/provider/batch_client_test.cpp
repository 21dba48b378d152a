// The Batch API client against the in-process stand-in: files and batches through their
// whole life (upload, create, poll, download, find again after a crash), shuffled output,
// validation failures, per-request errors, expiry and cancel; vectors bit-exact.
#include <gtest/gtest.h>

#include "batch_client_fixture.h"

namespace lens::provider::openai::batch_test {
namespace {

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

}  // namespace
}  // namespace lens::provider::openai::batch_test

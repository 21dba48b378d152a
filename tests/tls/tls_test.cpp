// lens-embed over HTTPS, through the real binary: a private CA made here, nginx as the
// TLS front of the stand-in provider. Certificate checks (unknown CA, host name), the ways
// to trust a CA (--ca-cert, <PROVIDER>_CA_CERT, [providers.X] ca_cert, SSL_CERT_FILE),
// --insecure, and HTTP/2 multiplexing through the front.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <fmt/core.h>
#include <chrono>
#include <fstream>
#include <memory>
#include <set>
#include <string>

#include "provider/openai/openai_provider.h"
#include "support/process.h"
#include "support/source_schemas.h"
#include "support/sql.h"
#include "support/stand_in.h"
#include "tls_front.h"
#include "verifier.h"

namespace lens::test {
namespace {

constexpr const char* k_model = "text-embedding-3-small";
constexpr const char* k_key = "sk-tls-test-key-5e1d";

class Tls : public ::testing::Test {
 protected:
  // latency_ms: how long the stand-in holds each request (the multiplexing test needs
  // requests that overlap whatever the machine's speed).
  void start(double latency_ms = 0) {
    stand_in::StandInOptions so;
    so.api_key = k_key;
    so.latency_ms = latency_ms;
    stand_in_ = std::make_unique<StandIn>(so);
    ASSERT_TRUE(stand_in_->ok()) << "the stand-in could not bind a port";
    std::string error;
    auto pki = make_test_pki(dir_ / "pki", error);
    ASSERT_TRUE(pki) << error;
    pki_ = *pki;
    front_ = std::make_unique<TlsFront>(dir_ / "nginx", stand_in_->port(), pki_);
    ASSERT_TRUE(front_->ok()) << front_->error();
  }

  void TearDown() override {
    if (HasFailure()) {
      dir_.keep();
      std::fprintf(stderr, "kept %s\n", dir_.path().c_str());
    }
  }

  // A SQLite database with the default source schema (tests/support's fixture) of
  // `conversations` conversations and lens-embed's tables; returns its --db value. The
  // count of exchanges a correct run embeds lands in `exchanges`.
  std::string make_db(const std::string& name, int conversations = 12, std::size_t* exchanges = nullptr) {
    const std::string url = "sqlite:" + (dir_ / (name + ".db"));
    auto db = Db::open(url);
    EXPECT_TRUE(db);
    if (!db) return {};
    const schemas::Fixture f{schemas::Schema::default_schema, schemas::Dialect::sqlite};
    const auto corpus = schemas::make_corpus(f, {.conversations = conversations, .seed = 16});
    EXPECT_EQ(schemas::load(*db, f, corpus.messages), "");
    if (exchanges) *exchanges = corpus.expected.size();
    db.reset();
    const Output init = run_lens({"init", "--db", url}, dir_ / "work");
    EXPECT_EQ(init.exit_code, 0) << init.out << init.err;
    return url;
  }

  // `run` against `base_url` with the API key and no CA variables of the caller's.
  Output run_embed(const std::string& db, const std::string& base_url,
                   const std::vector<std::string>& extra = {}, Env env = {}) {
    std::vector<std::string> args = {"run", "--db", db, "--quiet"};
    for (auto& a : supermind_args(base_url, k_model))
      args.push_back(a);
    args.insert(args.end(), extra.begin(), extra.end());
    env.emplace("SUPERMIND_API_KEY", k_key);
    env.emplace("SSL_CERT_FILE", "");
    env.emplace("SSL_CERT_DIR", "");
    return run_lens(args, dir_ / "work", env);
  }

  // Every eligible exchange has a row holding the stand-in's exact vector.
  void expect_verified(const std::string& db) {
    verify::VerifyOptions vo;
    vo.db = db;
    vo.provider = "supermind";
    vo.model = k_model;
    const auto report = verify::verify(vo);
    EXPECT_TRUE(report.ok()) << report.to_json();
    EXPECT_GT(report.rows, 0);
    EXPECT_EQ(report.rows, report.eligible);
    EXPECT_EQ(report.failures, 0);
  }

  std::int64_t rows(const std::string& db) {
    auto d = Db::open(db);
    const auto n = d ? d->scalar("SELECT count(*) FROM message_embeddings") : std::nullopt;
    return n ? std::stoll(*n) : -1;
  }

  TempDir dir_{"tls"};
  std::unique_ptr<StandIn> stand_in_;
  TestPki pki_;
  std::unique_ptr<TlsFront> front_;
};

// What a refused certificate must look like: exit 2 (configuration), a message that says
// how to trust a private CA, nothing embedded, and no request reached the provider.
// (The run's summary carries the cause; it is printed on stdout today, stderr later.)
void expect_certificate_refused(const Output& o, std::int64_t stand_in_requests, std::int64_t rows) {
  const std::string said = o.out + o.err;
  EXPECT_EQ(o.exit_code, 2) << said;
  EXPECT_NE(said.find("TLS certificate verification failed"), std::string::npos) << said;
  EXPECT_NE(said.find("--ca-cert"), std::string::npos) << said;
  EXPECT_NE(said.find("SSL_CERT_FILE"), std::string::npos) << said;
  EXPECT_EQ(stand_in_requests, 0);
  EXPECT_EQ(rows, 0);
  EXPECT_EQ((o.out + o.err).find(k_key), std::string::npos) << "the API key leaked";
}

TEST_F(Tls, UnknownCaIsRefusedAsAConfigurationError) {
  start();
  const std::string db = make_db("unknown_ca");
  const Output o = run_embed(db, front_->base_url());
  expect_certificate_refused(o, stand_in_->stat("requests"), rows(db));
  EXPECT_NE((o.out + o.err).find("unable to get local issuer certificate"), std::string::npos)
      << o.out << o.err;
}

TEST_F(Tls, CaCertFlagTrustsThePrivateCa) {
  start();
  const std::string db = make_db("flag");
  const Output o = run_embed(db, front_->base_url(), {"--ca-cert", pki_.ca_cert});
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
  expect_verified(db);
  EXPECT_GT(stand_in_->stat("ok_requests"), 0);
  // The requests went through the front, over TLS.
  front_->stop();
  const auto log = front_->access_log();
  EXPECT_FALSE(log.empty());
  for (const auto& l : log) {
    EXPECT_EQ(l.port, front_->port());
    EXPECT_EQ(l.status, 200);
  }
}

TEST_F(Tls, CaCertFromTheEnvironmentTheConfigFileAndSslCertFile) {
  start();
  {
    SCOPED_TRACE("SUPERMIND_CA_CERT");
    const std::string db = make_db("env");
    const Output o = run_embed(db, front_->base_url(), {}, {{"SUPERMIND_CA_CERT", pki_.ca_cert}});
    EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
    expect_verified(db);
  }
  {
    SCOPED_TRACE("[providers.supermind] ca_cert");
    const std::string db = make_db("config");
    const std::string config = dir_ / "lens-embed.toml";
    std::ofstream(config) << fmt::format("[providers.supermind]\nca_cert = \"{}\"\n", pki_.ca_cert);
    const Output o = run_embed(db, front_->base_url(), {"--config", config});
    EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
    expect_verified(db);
    // `config` names where the value came from.
    const Output c = run_lens({"config", "--config", config, "--provider", "supermind"}, dir_ / "work");
    EXPECT_NE(c.out.find(pki_.ca_cert), std::string::npos) << c.out << c.err;
    EXPECT_NE(c.out.find("lens-embed.toml:2"), std::string::npos) << c.out;
  }
  {
    SCOPED_TRACE("SSL_CERT_FILE");
    const std::string db = make_db("ssl_cert_file");
    const Output o = run_embed(db, front_->base_url(), {}, {{"SSL_CERT_FILE", pki_.ca_cert}});
    EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
    expect_verified(db);
  }
  {
    SCOPED_TRACE("a CA file that does not exist");
    const std::string db = make_db("missing_file");
    const std::string missing = dir_ / "no-such-ca.pem";
    const Output o = run_embed(db, front_->base_url(), {"--ca-cert", missing});
    EXPECT_EQ(o.exit_code, 2) << o.out << o.err;
    EXPECT_NE(o.err.find(missing), std::string::npos) << o.err;
    EXPECT_EQ(rows(db), 0);
  }
}

TEST_F(Tls, HostNameMismatchIsRefusedEvenWithTheRightCa) {
  start();
  const std::string db = make_db("mismatch");
  // The certificate is signed by the trusted CA but names other.example, not 127.0.0.1.
  const Output o = run_embed(db, front_->mismatch_base_url(), {"--ca-cert", pki_.ca_cert});
  expect_certificate_refused(o, stand_in_->stat("requests"), rows(db));
  // OpenSSL's reason names the host that the certificate does not cover.
  EXPECT_NE(
      (o.out + o.err).find("no alternative certificate subject name matches target host name '127.0.0.1'"),
      std::string::npos)
      << o.out << o.err;
}

TEST_F(Tls, InsecureSkipsVerificationAndWarns) {
  start();
  const std::string db = make_db("insecure");
  const Output o = run_embed(db, front_->base_url(), {"--insecure"});
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
  EXPECT_NE(o.err.find("TLS certificate verification is OFF"), std::string::npos) << o.err;
  EXPECT_EQ((o.out + o.err).find(k_key), std::string::npos) << "the API key leaked";
  expect_verified(db);
}

// Many requests in flight over few connections: HTTP/2 streams through the front. The
// stand-in holds every request for 1.5 s, so the 16 requests the run starts at once are
// all in progress together however slow the machine is at sending them.
TEST_F(Tls, Http2MultiplexesManyRequestsOverFewConnections) {
  start(1500);
  std::size_t exchanges = 0;
  const std::string db = make_db("http2", 24, &exchanges);
  ASSERT_GE(exchanges, 16u);
  // Batches small enough for at least 16 requests.
  const std::size_t batch = exchanges / 16;
  const Output o = run_embed(db, front_->base_url(),
                             {"--ca-cert", pki_.ca_cert, "--batch-size", std::to_string(batch),
                              "--concurrency", "16", "--rpm", "0", "--tpm", "0"});
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
  expect_verified(db);
  front_->stop();
  const auto log = front_->access_log();
  ASSERT_GE(log.size(), 16u) << exchanges << " exchanges in batches of " << batch;
  std::set<std::int64_t> connections;
  for (const auto& l : log) {
    EXPECT_EQ(l.protocol, "HTTP/2.0");
    EXPECT_EQ(l.status, 200);
    connections.insert(l.connection);
  }
  const int at_once = max_overlap(log);
  std::printf("%zu requests over %zu TLS connection(s), at most %d in progress at once\n", log.size(),
              connections.size(), at_once);
  EXPECT_LE(connections.size(), 2u) << log.size() << " requests";
  EXPECT_GE(at_once, 16) << "requests in progress at once";
}

// Below the binary, the client alone: which TLS failures are the user's to fix
// (configuration) and which are the network's (transient, like a reset).
provider::Completion embed_once(const std::string& base_url, const std::string& ca_cert) {
  provider::OpenAiOptions o;
  o.base_url = base_url;
  o.api_key = k_key;
  o.model = k_model;
  o.ca_cert = ca_cert;
  auto client = provider::make_openai_provider(o);
  if (!client) {
    provider::Completion c;
    c.result = std::unexpected(provider::EmbedFailure{client.error(), 0, std::nullopt, false});
    return c;
  }
  static const std::vector<std::string_view> inputs = {"a question over TLS"};
  (*client)->submit(provider::EmbedRequest{7, inputs, 8, {}});
  for (int i = 0; i < 300; ++i) {
    auto done = (*client)->poll(std::chrono::milliseconds(100));
    if (!done.empty()) return std::move(done.front());
  }
  provider::Completion c;
  c.result = std::unexpected(
      provider::EmbedFailure{util::Error{util::ErrorCode::internal, "no answer in 30 s"}, 0, {}, false});
  return c;
}

TEST_F(Tls, ClientTellsCertificateFailuresFromOtherTlsFailures) {
  start();
  ::unsetenv("SSL_CERT_FILE");
  ::unsetenv("SSL_CERT_DIR");
  using util::ErrorCode;
  auto code = [](const provider::Completion& c) {
    return c.result ? std::optional<ErrorCode>() : std::optional(c.result.error().error.code);
  };
  const auto trusted = embed_once(front_->base_url(), pki_.ca_cert);
  ASSERT_TRUE(trusted.result) << trusted.result.error().error.message;
  EXPECT_EQ(trusted.result->dimensions, 8);

  const auto unknown_ca = embed_once(front_->base_url(), "");
  EXPECT_EQ(code(unknown_ca), ErrorCode::configuration);
  const auto wrong_host = embed_once(front_->mismatch_base_url(), pki_.ca_cert);
  EXPECT_EQ(code(wrong_host), ErrorCode::configuration);
  // A CA file that is not PEM: our setup, not the server's certificate; still the user's.
  const std::string garbage = dir_ / "garbage.pem";
  std::ofstream(garbage) << "not a certificate\n";
  const auto bad_file = embed_once(front_->base_url(), garbage);
  EXPECT_EQ(code(bad_file), ErrorCode::configuration);
  EXPECT_NE(bad_file.result.error().error.message.find("--ca-cert"), std::string::npos)
      << bad_file.result.error().error.message;
  // TLS spoken to a plain HTTP server: the handshake fails, which says nothing about
  // certificates; it counts as the provider being unavailable.
  const auto plain = embed_once(fmt::format("https://127.0.0.1:{}/v1", stand_in_->port()), pki_.ca_cert);
  EXPECT_EQ(code(plain), ErrorCode::transient) << (plain.result ? "" : plain.result.error().error.message);
}

}  // namespace
}  // namespace lens::test

// A deterministic Lens corpus for the chaos, hostile-input and secrets tests, with the
// bookkeeping that says what a correct run makes of it.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "support/sql.h"

namespace lens::test {

// `exchanges` eligible user messages with answers (most), unanswered questions,
// system/tool messages, blank/NULL user messages, equal timestamps ordered by id, a few
// inputs over the token limit and a few that the stand-in rejects.
struct CorpusOptions {
  std::int64_t exchanges = 1000;
  std::uint64_t seed = 1;
  double p_long = 0.0005;   // over 8191 tokens: truncated
  double p_poison = 0.001;  // contains k_poison_marker: the stand-in answers 400 context length
};
// Set StandInOptions::reject_marker to this for the poisoned inputs to be refused.
inline constexpr const char* k_poison_marker = "POISON-PILL-7f3a";

struct Corpus {
  std::vector<Db::Message> messages;
  std::int64_t eligible = 0, ineligible_users = 0, long_inputs = 0;
  std::set<std::string> poisoned;  // user message ids expected to fail with context_length
};
Corpus make_corpus(const CorpusOptions& options);

// An id in uuid form derived from a counter (valid for PostgreSQL's uuid type); the
// bits are mixed so id order differs from creation order.
std::string uuid_from(std::uint64_t n);

}  // namespace lens::test

// Per-text billing counters of the stand-in.
#include "stand_in_billing.h"

#include <vector>

namespace lens::stand_in {

void Billing::add_sync(std::span<const std::string_view> inputs) {
  // Hashed before taking the lock: many handler threads bill at once.
  std::vector<util::Sha256> digests;
  digests.reserve(inputs.size());
  for (auto in : inputs)
    digests.push_back(util::sha256(in));
  std::lock_guard lock(mu_);
  for (const auto& d : digests)
    ++by_digest_[d].sync;
}

void Billing::add_batch(std::string_view input, std::int64_t tokens) {
  const util::Sha256 d = util::sha256(input);
  std::lock_guard lock(mu_);
  ++by_digest_[d].batch;
  batch_tokens_ += tokens;
}

Billing::Totals Billing::totals() const {
  std::lock_guard lock(mu_);
  Totals t;
  t.batch_tokens = batch_tokens_;
  for (const auto& [k, c] : by_digest_) {
    t.sync_inputs += c.sync;
    t.batch_inputs += c.batch;
    if (c.sync + c.batch > 0) ++t.distinct_inputs;
    if (c.sync + c.batch > 1) ++t.billed_more_than_once;
  }
  return t;
}

std::string Billing::json() const {
  std::lock_guard lock(mu_);
  std::string out = "{";
  bool first = true;
  for (const auto& [d, c] : by_digest_) {
    if (!first) out += ",";
    first = false;
    out += '"';
    out += util::to_hex(d);
    out += "\":{\"sync\":" + std::to_string(c.sync) + ",\"batch\":" + std::to_string(c.batch) + "}";
  }
  return out + "}";
}

void Billing::clear() {
  std::lock_guard lock(mu_);
  by_digest_.clear();
  batch_tokens_ = 0;
}

}  // namespace lens::stand_in

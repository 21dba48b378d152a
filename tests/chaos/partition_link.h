// One worker of lens_chaos behind a link that can be cut: a network namespace of its own,
// joined to ours (where PostgreSQL and the stand-in listen on every address) by a veth
// pair. Cutting sets our end down, so the worker's connections hang, as between machines,
// while it keeps running and holding what it read. Needs root and iproute2.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "support/sql.h"

namespace lens::chaos {

// The network whose clients PostgreSQL trusts (PG_TEST_TRUST_CIDR).
inline constexpr const char* k_partition_cidr = "10.214.0.0/16";

class PartitionLink {
 public:
  // Creates the namespace and the pair (removing leftovers of the same name first).
  // nullptr with `error` saying which command failed (not root, no ip, no veth support).
  static std::unique_ptr<PartitionLink> create(std::string& error);
  ~PartitionLink();  // removes the namespace, and with it both ends of the pair
  PartitionLink(const PartitionLink&) = delete;
  PartitionLink& operator=(const PartitionLink&) = delete;

  // What the worker in the namespace connects to: our end's address.
  [[nodiscard]] const std::string& server_address() const { return server_address_; }
  // `argv` run inside the namespace (`ip netns exec` execs it: the pid is the program's).
  [[nodiscard]] std::vector<std::string> inside(const std::vector<std::string>& argv) const;
  bool cut();      // our end down: false when `ip` failed
  bool restore();  // our end up again

 private:
  explicit PartitionLink(std::string prefix);
  std::string prefix_, ns_, our_end_, server_address_;
};

// A worker's name in embedding_claims: host:pid.
std::string worker_name(pid_t pid);

// How many claims `worker` holds that it has certainly read (claimed 0.8 s ago: a worker
// claims a page and reads it in the next statement): a cut then leaves it holding their
// old text. 0 when the database cannot say.
std::int64_t read_claims(test::Db& db, const std::string& worker);

// Cuts the link, then edits up to 20 of the messages the cut-off `worker` holds claims on
// and has certainly read (claimed 0.8 s ago; none locked by a commit of its own cut short),
// so that its results for them are of an older text. Short inputs only: an edit must not
// move an input across the truncation limit the verifier counts. Returns how many it
// edited; `say` tells what happened.
std::size_t cut_and_edit(PartitionLink& link, test::Db& db, const std::string& worker,
                         const std::function<void(const std::string&)>& say);

}  // namespace lens::chaos

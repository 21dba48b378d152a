#include "partition_link.h"

#include <unistd.h>

#include <fmt/core.h>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace lens::chaos {
namespace {

int sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

}  // namespace

PartitionLink::PartitionLink(std::string prefix)
    : prefix_(std::move(prefix)),
      ns_(prefix_ + "w"),
      our_end_(prefix_ + "a"),
      server_address_("10.214.0.1") {}

std::unique_ptr<PartitionLink> PartitionLink::create(std::string& error) {
  if (::geteuid() != 0) {
    error = "a partition needs root (ip netns, veth pairs)";
    return nullptr;
  }
  std::unique_ptr<PartitionLink> link(new PartitionLink(fmt::format("lc{}", ::getpid() % 10'000'000)));
  const std::string& ns = link->ns_;
  const std::string& a = link->our_end_;
  const std::string b = link->prefix_ + "b";
  (void)sh(fmt::format("ip netns del {}", ns));
  (void)sh(fmt::format("ip link del {}", a));
  for (const auto& c : {fmt::format("ip netns add {}", ns), fmt::format("ip -n {} link set lo up", ns),
                        fmt::format("ip link add {} type veth peer name {}", a, b),
                        fmt::format("ip link set {} netns {}", b, ns),
                        fmt::format("ip addr add {}/30 dev {}", link->server_address_, a),
                        fmt::format("ip -n {} addr add 10.214.0.2/30 dev {}", ns, b),
                        fmt::format("ip link set {} up", a), fmt::format("ip -n {} link set {} up", ns, b)}) {
    if (sh(c) != 0) {
      error = "`" + c + "` failed";
      return nullptr;  // the destructor removes what was made
    }
  }
  return link;
}

PartitionLink::~PartitionLink() {
  (void)sh(fmt::format("ip netns del {}", ns_));
  (void)sh(fmt::format("ip link del {}", our_end_));
}

std::vector<std::string> PartitionLink::inside(const std::vector<std::string>& argv) const {
  std::vector<std::string> out = {"ip", "netns", "exec", ns_};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

bool PartitionLink::cut() {
  return sh(fmt::format("ip link set {} down", our_end_)) == 0;
}

bool PartitionLink::restore() {
  return sh(fmt::format("ip link set {} up", our_end_)) == 0;
}

std::string worker_name(pid_t pid) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return fmt::format("{}:{}", host, pid);
}

std::int64_t read_claims(test::Db& db, const std::string& worker) {
  const auto n =
      db.scalar(fmt::format("SELECT count(*) FROM embedding_claims WHERE worker = '{}' AND claimed_at < "
                            "now() - interval '0.8 second'",
                            worker));
  return n && !n->empty() ? std::stoll(*n) : 0;
}

std::size_t cut_and_edit(PartitionLink& link, test::Db& db, const std::string& worker,
                         const std::function<void(const std::string&)>& say) {
  if (!link.cut()) {
    say("could not cut the link of worker 0");
    return 0;
  }
  say("link of worker 0 DOWN");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a commit on its way lands first
  const auto rows = db.query(
      fmt::format("SELECT c.user_message_id::text FROM embedding_claims c JOIN messages m ON m.id = "
                  "c.user_message_id WHERE c.worker = '{}' AND c.claimed_at < now() - interval '0.8 second' "
                  "AND length(m.content) < 1000 ORDER BY c.claimed_at LIMIT 20 FOR UPDATE OF c SKIP LOCKED",
                  worker));
  if (!rows || rows->empty()) {
    say(fmt::format("worker 0 held no claims to edit ({})", rows ? "none" : db.last_error()));
    return 0;
  }
  std::string ids;
  for (const auto& r : *rows)
    ids += (ids.empty() ? "'" : ",'") + r[0].value_or("") + "'";
  const std::string e = db.exec(
      "UPDATE messages SET content = content || ' [edited during the partition]', updated_at = now() "
      "WHERE id IN (" +
      ids + ")");
  say(e.empty() ? fmt::format("edited {} messages worker 0 holds", rows->size()) : "editing failed: " + e);
  return e.empty() ? rows->size() : 0;
}

}  // namespace lens::chaos

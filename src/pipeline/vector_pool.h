// Embedding buffers that go round: the writer hands each row's vector back once its
// transaction is committed, the dispatcher copies the next answer's vectors into them.
// A row's 12 KB (3072 dimensions) then lands in memory that is already mapped and warm,
// instead of a fresh allocation per row that another thread frees (issue 14's profile:
// malloc, free and page faults on both threads).
#pragma once

#include <cstddef>
#include <mutex>
#include <span>
#include <vector>

namespace lens::pipeline {

// Every method may be called from any thread.
class VectorPool {
 public:
  // Buffers kept at most: a writer's transaction of rows plus what is queued behind it.
  explicit VectorPool(std::size_t max_kept = 2048) : max_kept_(max_kept) {}

  // A vector holding a copy of `values`, in a pooled buffer when one is there.
  [[nodiscard]] std::vector<float> copy_of(std::span<const float> values) {
    std::vector<float> out;
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        out = std::move(free_.back());
        free_.pop_back();
      }
    }
    out.assign(values.begin(), values.end());
    return out;
  }

  // Takes `v`'s buffer back (dropped when the pool is full).
  void give(std::vector<float>&& v) {
    if (v.capacity() == 0) return;
    std::lock_guard lock(mutex_);
    if (free_.size() < max_kept_) free_.push_back(std::move(v));
  }

  [[nodiscard]] std::size_t kept() const {
    std::lock_guard lock(mutex_);
    return free_.size();
  }

 private:
  std::size_t max_kept_;
  mutable std::mutex mutex_;
  std::vector<std::vector<float>> free_;
};

}  // namespace lens::pipeline

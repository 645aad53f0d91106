// Running independent tasks on worker threads, with errors carried back to the caller.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace perfsage {

inline int resolve_threads(int threads) {
  return threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// Calls task(i) for every i in [0, count) on up to `threads` threads (0: all hardware threads;
// never more threads than tasks). Tasks are handed out in order as workers free up. The first
// exception any task throws stops the hand-out and is rethrown here after every worker has joined
// (an exception escaping a std::thread would terminate the process).
template <typename Task>
void parallel_for(int64_t count, int threads, const Task& task) {
  if (count <= 0) return;
  const int workers = static_cast<int>(std::min<int64_t>(resolve_threads(threads), count));
  if (workers == 1) {
    for (int64_t i = 0; i < count; ++i) task(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::atomic<bool> stop{false};
  std::vector<std::exception_ptr> errors(static_cast<size_t>(workers));
  auto work = [&](int worker) {
    try {
      for (int64_t i = next++; i < count && !stop; i = next++) task(i);
    } catch (...) {
      errors[static_cast<size_t>(worker)] = std::current_exception();
      stop = true;
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(workers));
  for (int w = 0; w < workers; ++w) pool.emplace_back(work, w);
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace perfsage

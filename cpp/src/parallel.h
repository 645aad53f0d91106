// Running independent tasks on worker threads, with errors carried back to the caller.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
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

// Items handed from the thread that makes them, in order, to the workers that use them.
class Handover {
 public:
  // Items [0, ready) are made.
  void publish(int64_t ready) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.store(ready, std::memory_order_release);
    }
    changed_.notify_all();
  }

  // No more items will come (their maker failed).
  void abandon() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      abandoned_ = true;
    }
    changed_.notify_all();
  }

  // Blocks until items [0, needed) are made: true, or abandoned first: false.
  bool wait(int64_t needed) {
    if (ready_.load(std::memory_order_acquire) >= needed) return true;
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return abandoned_ || ready_.load(std::memory_order_relaxed) >= needed; });
    return ready_.load(std::memory_order_relaxed) >= needed;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::atomic<int64_t> ready_{0};
  bool abandoned_ = false;
};

// parallel_for(count, threads, task) while the calling thread runs make(), which publishes on
// `handover` the items the tasks wait for: a binding converting its own objects (under its
// interpreter lock, so on that one thread) overlaps the workers' building. With one worker, make()
// runs first and the tasks after it, all on the calling thread. If make() throws, the handover is
// abandoned (the tasks' waits return false), the workers join and the exception reaches the caller;
// a task's exception reaches it after make() has finished.
template <typename Make, typename Task>
void parallel_for_made(int64_t count, int threads, Handover& handover, const Make& make, const Task& task) {
  const int workers = static_cast<int>(std::min<int64_t>(resolve_threads(threads), std::max<int64_t>(1, count)));
  if (workers == 1) {
    make();
    parallel_for(count, 1, task);
    return;
  }
  std::exception_ptr task_error;
  std::thread runner([&] {
    try {
      parallel_for(count, workers, task);
    } catch (...) {
      task_error = std::current_exception();
    }
  });
  try {
    make();
  } catch (...) {
    handover.abandon();
    runner.join();
    throw;
  }
  runner.join();
  if (task_error) std::rethrow_exception(task_error);
}

}  // namespace perfsage

// A SageNetwork that several threads use at once, one of them perhaps training it.
//
// Why snapshots rather than a reader-writer lock held for the length of a call: a lock held while
// training would block every reader for the whole run, and a trainer that gives it up around its
// callbacks would still make readers wait for a batch, and could deadlock with a caller that holds
// another lock (Python's GIL) while the callback waits for that one. Here the state is an immutable
// SageNetwork behind a shared_ptr; the mutex guards only the pointer, so it is held for a pointer
// copy or swap and never while computing or calling out. Readers (predict, parameters, save) take
// the current snapshot and work on it without a lock. Writers build a new network and swap it in.
// Training works on its own copy of the weights and publishes them after every batch, before the
// batch and epoch callbacks run: a callback, or any other thread, sees the weights as of the last
// finished batch, and the training arithmetic is that of perfsage::train, bit for bit.
//
// While a network trains, its weights belong to the trainer: the writers (init_parameters,
// set_parameters, set_normalization, fit_normalization) and a second train throw perfsage::Error
// instead of waiting, since a write from a callback would otherwise wait for its own caller.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "perfsage/sage.h"
#include "perfsage/train.h"

namespace perfsage {

class SharedNetwork {
 public:
  explicit SharedNetwork(SageConfig config);
  explicit SharedNetwork(SageNetwork network);
  SharedNetwork(const SharedNetwork&) = delete;
  SharedNetwork& operator=(const SharedNetwork&) = delete;

  // Fixed for the object's life.
  const SageConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }

  // The current network, which never changes once published: hold it as long as needed.
  std::shared_ptr<const SageNetwork> snapshot() const;
  // Whether train() is running.
  bool training() const;

  // Writers: each replaces the network as a whole, so a reader sees it before or after, never
  // half-written. Throw perfsage::Error while training.
  void init_parameters(uint64_t seed);
  void set_parameters(std::vector<float> values);   // layout order, layout().size() values
  void set_normalization(Normalization normalization);  // checked before it is published
  void fit_normalization(const std::vector<GraphInput>& graphs, const float* labels);

  // perfsage::train on a private copy, published after every batch and at the end (with the best
  // epoch's weights when there is validation data, as perfsage::train leaves them). The callbacks
  // run on the calling thread with no lock of this object held.
  TrainResult train(const GraphSet& train_set, const float* train_labels, const GraphSet* val,
                    const float* val_labels, const TrainOptions& options,
                    const EpochCallback& on_epoch = nullptr, const BatchCallback& on_batch = nullptr,
                    TrainState* state = nullptr);

 private:
  // Runs `change` on a copy of the current network and publishes the copy; `what` names the
  // operation in the error thrown while training.
  template <typename Change>
  void rewrite(const char* what, Change&& change);
  void publish(std::shared_ptr<const SageNetwork> next);

  const SageConfig config_;
  const ParamLayout layout_;
  std::mutex write_mutex_;      // one writer at a time; held while a writer computes
  mutable std::mutex state_mutex_;  // guards current_ and training_; held only to read or swap them
  std::shared_ptr<const SageNetwork> current_;
  bool training_ = false;
};

}  // namespace perfsage

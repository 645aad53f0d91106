// SharedNetwork: snapshots for readers, whole-network replacement for writers, and training on a
// private copy that is published at batch boundaries (see shared_network.h for why).
#include "perfsage/shared_network.h"

#include <string>
#include <utility>

#include "perfsage/error.h"

namespace perfsage {

SharedNetwork::SharedNetwork(SageConfig config) : SharedNetwork(SageNetwork(std::move(config))) {}

SharedNetwork::SharedNetwork(SageNetwork network)
    : config_(network.config()),
      layout_(network.layout()),
      current_(std::make_shared<const SageNetwork>(std::move(network))) {}

std::shared_ptr<const SageNetwork> SharedNetwork::snapshot() const {
  std::lock_guard<std::mutex> hold(state_mutex_);
  return current_;
}

bool SharedNetwork::training() const {
  std::lock_guard<std::mutex> hold(state_mutex_);
  return training_;
}

void SharedNetwork::publish(std::shared_ptr<const SageNetwork> next) {
  std::lock_guard<std::mutex> hold(state_mutex_);
  current_.swap(next);
  // The old network is freed (if no reader holds it) when `next` goes, after the lock is released.
}

template <typename Change>
void SharedNetwork::rewrite(const char* what, Change&& change) {
  std::lock_guard<std::mutex> writing(write_mutex_);
  std::shared_ptr<const SageNetwork> base;
  {
    std::lock_guard<std::mutex> hold(state_mutex_);
    if (training_)
      throw Error(std::string(what) + ": the network is training; its weights can change only once "
                  "training has returned");
    base = current_;
  }
  auto next = std::make_shared<SageNetwork>(*base);
  change(*next);
  publish(std::move(next));
}

void SharedNetwork::init_parameters(uint64_t seed) {
  rewrite("init_parameters", [&](SageNetwork& net) { net.init_parameters(seed); });
}

void SharedNetwork::set_parameters(std::vector<float> values) {
  if (values.size() != static_cast<size_t>(layout_.size()))
    throw Error("set_parameters: " + std::to_string(values.size()) + " values, the layout has " +
                std::to_string(layout_.size()));
  rewrite("set_parameters", [&](SageNetwork& net) { net.parameters() = std::move(values); });
}

void SharedNetwork::set_normalization(Normalization normalization) {
  rewrite("set_normalization", [&](SageNetwork& net) {
    net.normalization() = std::move(normalization);
    net.check_normalization();
  });
}

void SharedNetwork::fit_normalization(const std::vector<GraphInput>& graphs, const float* labels) {
  rewrite("fit_normalization", [&](SageNetwork& net) { net.fit_normalization(graphs, labels); });
}

TrainResult SharedNetwork::train(const GraphSet& train_set, const float* train_labels, const GraphSet* val,
                                 const float* val_labels, const TrainOptions& options,
                                 const EpochCallback& on_epoch, const BatchCallback& on_batch,
                                 TrainState* state) {
  std::shared_ptr<const SageNetwork> base;
  {
    std::lock_guard<std::mutex> writing(write_mutex_);
    std::lock_guard<std::mutex> hold(state_mutex_);
    if (training_) throw Error("train: the network is already training (on another thread)");
    training_ = true;
    base = current_;
  }
  // Clears the flag however training ends (returns, a callback stops it, or it throws).
  struct TrainingFlag {
    SharedNetwork& self;
    ~TrainingFlag() {
      std::lock_guard<std::mutex> hold(self.state_mutex_);
      self.training_ = false;
    }
  } flag{*this};

  SageNetwork work(*base);
  base.reset();
  auto publish_work = [&] { publish(std::make_shared<const SageNetwork>(work)); };
  // perfsage::train calls the batch callback after every step, so publishing there also covers
  // the epoch callback, which follows the epoch's last batch with no step between them.
  const BatchCallback batch = [&](int64_t index, int64_t batches) {
    publish_work();
    return on_batch ? on_batch(index, batches) : true;
  };
  TrainResult result;
  try {
    result = perfsage::train(work, train_set, train_labels, val, val_labels, options, on_epoch, batch, state);
  } catch (...) {
    // As training in place did: the network keeps the weights of the last finished batch.
    publish_work();
    throw;
  }
  publish_work();
  return result;
}

}  // namespace perfsage

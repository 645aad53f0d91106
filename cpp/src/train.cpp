#include "perfsage/train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "parallel.h"
#include "perfsage/error.h"
#include "rng.h"

namespace perfsage {

const char* to_string(Schedule s) { return s == Schedule::kConstant ? "constant" : "cosine"; }

Schedule parse_schedule(const std::string& name, const std::string& field) {
  if (name == "constant") return Schedule::kConstant;
  if (name == "cosine") return Schedule::kCosine;
  throw Error(field + ": '" + name + "' is not one of 'constant', 'cosine'");
}

void TrainOptions::validate() const {
  auto fail_field = [](const char* field, const std::string& why) {
    throw Error(std::string(field) + " " + why);
  };
  if (epochs < 0) fail_field("epochs", "must be >= 0, got " + std::to_string(epochs));
  if (batch_size < 1) fail_field("batch_size", "must be >= 1, got " + std::to_string(batch_size));
  if (!(lr > 0) || !std::isfinite(lr)) fail_field("lr", "must be a positive number, got " + std::to_string(lr));
  if (!(weight_decay >= 0) || !std::isfinite(weight_decay))
    fail_field("weight_decay", "must be >= 0, got " + std::to_string(weight_decay));
  if (!(beta1 >= 0 && beta1 < 1)) fail_field("beta1", "must be in [0, 1), got " + std::to_string(beta1));
  if (!(beta2 >= 0 && beta2 < 1)) fail_field("beta2", "must be in [0, 1), got " + std::to_string(beta2));
  if (!(adam_eps > 0)) fail_field("adam_eps", "must be > 0, got " + std::to_string(adam_eps));
  if (warmup_epochs < 0) fail_field("warmup_epochs", "must be >= 0, got " + std::to_string(warmup_epochs));
  if (!(min_lr_ratio >= 0 && min_lr_ratio <= 1))
    fail_field("min_lr_ratio", "must be in [0, 1], got " + std::to_string(min_lr_ratio));
  if (!(clip_norm >= 0) || !std::isfinite(clip_norm))
    fail_field("clip_norm", "must be >= 0 (0 disables clipping), got " + std::to_string(clip_norm));
  if (patience < 0) fail_field("patience", "must be >= 0 (0: never stop early), got " + std::to_string(patience));
}

namespace {

void check_labels(const GraphSet& set, const float* labels, int64_t targets, const char* what) {
  for (int64_t i = 0; i < set.size() * targets; ++i) {
    const float y = labels[i];
    if (std::isnan(y)) continue;
    if (!(y > 0) || !std::isfinite(y))
      throw Error(std::string(what) + " label of graph " + std::to_string(i / targets) + ", target " +
                  std::to_string(i % targets) + " is " + std::to_string(y) +
                  "; labels must be positive and finite (NaN = missing)");
  }
}

double learning_rate(const TrainOptions& o, int64_t step, int64_t steps_per_epoch) {
  const int64_t warmup = static_cast<int64_t>(o.warmup_epochs) * steps_per_epoch;
  if (step < warmup) return o.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (o.schedule == Schedule::kConstant) return o.lr;
  const int64_t total = std::max<int64_t>(1, static_cast<int64_t>(o.epochs) * steps_per_epoch - warmup);
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(total));
  const double kPi = 3.14159265358979323846;
  return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * 0.5 * (1.0 + std::cos(kPi * progress)));
}

}  // namespace

Evaluation evaluate(const SageNetwork& net, const GraphSet& set, const float* labels, int threads) {
  const int64_t n = set.size(), T = net.config().num_targets;
  std::vector<GraphInput> inputs;
  inputs.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) inputs.push_back(set.at(i));
  std::vector<float> pred(static_cast<size_t>(n * T));
  net.predict(inputs, threads, pred.data());
  Evaluation ev;
  ev.mape.assign(static_cast<size_t>(T), 0.0);
  std::vector<int64_t> counts(static_cast<size_t>(T), 0);
  double loss = 0.0;
  int64_t count = 0;
  const auto& norm = net.normalization();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < T; ++t) {
      const double y = labels[i * T + t], yhat = pred[i * T + t];
      if (std::isnan(y)) continue;
      const double ape = std::abs(yhat - y) / y;
      ev.mape[t] += ape;
      ++counts[t];
      if (net.config().loss == LossKind::kMape) {
        loss += std::min(ape, 1.0);  // capped: see Evaluation::loss
      } else {
        const double e = (std::log(yhat) - std::log(y)) / norm.target_std[t];
        loss += e * e;
      }
      ++count;
    }
  for (int64_t t = 0; t < T; ++t)
    ev.mape[t] = counts[t] ? ev.mape[t] / static_cast<double>(counts[t]) : std::nan("");
  ev.loss = count ? loss / static_cast<double>(count) : std::nan("");
  return ev;
}

void TrainState::validate(int64_t num_params, int32_t epochs) const {
  auto fail = [](const std::string& field, const std::string& why) {
    throw Error("training state: " + field + " " + why + " (is it from another network or run?)");
  };
  if (epochs_done < 0 || epochs_done > epochs)
    fail("epochs_done", "is " + std::to_string(epochs_done) + ", the run has " + std::to_string(epochs) + " epochs");
  if (step < 0) fail("step", "is negative");
  const std::string size = "has the network's " + std::to_string(num_params) + " values";
  if (static_cast<int64_t>(m.size()) != num_params) fail("m", "has " + std::to_string(m.size()) + " values, not " + size.substr(8));
  if (static_cast<int64_t>(v.size()) != num_params) fail("v", "has " + std::to_string(v.size()) + " values, not " + size.substr(8));
  if (!best_params.empty() && static_cast<int64_t>(best_params.size()) != num_params)
    fail("best_params", "has " + std::to_string(best_params.size()) + " values, not " + size.substr(8));
  if (static_cast<int64_t>(result.history.size()) != epochs_done)
    fail("history", "has " + std::to_string(result.history.size()) + " epochs, not epochs_done = " +
                        std::to_string(epochs_done));
  if (result.best_epoch < 0 || result.best_epoch > epochs_done)
    fail("best_epoch", "is " + std::to_string(result.best_epoch) + ", outside 0.." + std::to_string(epochs_done));
}

TrainResult train(SageNetwork& net, const GraphSet& train_set, const float* train_labels,
                  const GraphSet* val, const float* val_labels, const TrainOptions& o,
                  const EpochCallback& on_epoch, const BatchCallback& on_batch, TrainState* state) {
  o.validate();
  net.check_normalization();
  const int64_t T = net.config().num_targets;
  const int64_t n = train_set.size();
  if (n == 0) throw Error("training set is empty");
  check_labels(train_set, train_labels, T, "training");
  for (const GraphSet* set : {&train_set, val})
    if (set && set->node_label_targets() != 0 && set->node_label_targets() != T)
      throw Error("per-operator labels name " + std::to_string(set->node_label_targets()) +
                  " targets, the network has " + std::to_string(T));
  if (val && val->size() > 0) check_labels(*val, val_labels, T, "validation");
  const bool has_val = val && val->size() > 0;
  // Every graph is checked once here, so a bad one is named before hours of training.
  for (int64_t i = 0; i < n; ++i) check_graph_input(train_set.at(i), net.config(), "training graph " + std::to_string(i));
  if (has_val)
    for (int64_t i = 0; i < val->size(); ++i)
      check_graph_input(val->at(i), net.config(), "validation graph " + std::to_string(i));

  const ParamLayout& layout = net.layout();
  std::vector<float>& params = net.parameters();
  const size_t P = params.size();
  std::vector<float> m(P, 0.0f), v(P, 0.0f), grad(P, 0.0f);
  std::vector<uint8_t> decays(P, 0);
  for (const ParamInfo& p : layout.params())
    if (p.decays) std::fill(decays.begin() + p.offset, decays.begin() + p.offset + p.size(), 1);

  const int64_t batch = o.batch_size;
  const int64_t steps_per_epoch = (n + batch - 1) / batch;
  const int64_t max_shards = (batch + kShardGraphs - 1) / kShardGraphs;
  std::vector<std::vector<float>> shard_grads(static_cast<size_t>(max_shards));
  std::vector<double> shard_loss(static_cast<size_t>(max_shards));
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  Rng rng(o.seed ^ 0x5EED0F5A6Eull);

  TrainResult result;
  std::vector<float> best_params;
  double best_loss = std::numeric_limits<double>::infinity();
  int64_t step = 0;
  int32_t first_epoch = 1;
  if (state && state->epochs_done > 0) {
    state->validate(static_cast<int64_t>(P), o.epochs);
    m = state->m;
    v = state->v;
    best_params = state->best_params;
    best_loss = state->best_loss;
    step = state->step;
    result = state->result;
    result.interrupted = false;
    first_epoch = state->epochs_done + 1;
    // Each epoch shuffles the previous epoch's order: replaying the shuffles gives the next epoch
    // the order it had (n draws each; far cheaper than an epoch).
    for (int32_t e = 0; e < state->epochs_done; ++e) rng.shuffle(order);
    if (result.stopped_early) first_epoch = o.epochs + 1;
  }
  for (int32_t epoch = first_epoch; epoch <= o.epochs; ++epoch) {
    const auto started = std::chrono::steady_clock::now();
    rng.shuffle(order);
    double loss_sum = 0.0, norm_sum = 0.0, lr = o.lr;
    int64_t label_sum = 0, steps = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const int64_t lo = s * batch, count = std::min(batch, n - lo);
      int64_t labelled = 0;
      for (int64_t i = lo; i < lo + count; ++i)
        for (int64_t t = 0; t < T; ++t) labelled += std::isnan(train_labels[order[i] * T + t]) ? 0 : 1;
      if (labelled > 0) {
        const int64_t shards = (count + kShardGraphs - 1) / kShardGraphs;
        parallel_for(shards, o.threads, [&](int64_t shard) {
          const int64_t a = lo + shard * kShardGraphs, b = std::min(lo + count, a + kShardGraphs);
          std::vector<GraphInput> inputs;
          std::vector<float> labels;
          for (int64_t i = a; i < b; ++i) {
            inputs.push_back(train_set.at(order[i]));
            labels.insert(labels.end(), train_labels + order[i] * T, train_labels + (order[i] + 1) * T);
          }
          bool any = false;
          for (float y : labels) any = any || !std::isnan(y);
          if (!any) {
            shard_grads[shard].assign(P, 0.0f);
            shard_loss[shard] = 0.0;
            return;
          }
          shard_loss[shard] = net.loss_and_gradients<float>(inputs, labels.data(), &shard_grads[shard],
                                                            nullptr, labelled);
        });
        // The fixed-order reduction that makes the result independent of the thread count.
        std::fill(grad.begin(), grad.end(), 0.0f);
        double batch_loss = 0.0;
        for (int64_t shard = 0; shard < shards; ++shard) {
          const std::vector<float>& g = shard_grads[shard];
          for (size_t i = 0; i < P; ++i) grad[i] += g[i];
          batch_loss += shard_loss[shard];
        }
        if (!std::isfinite(batch_loss))
          throw Error("training diverged in epoch " + std::to_string(epoch) + " (loss is " +
                      std::to_string(batch_loss) + "); try a lower lr or clip_norm");
        double sq = 0.0;
        for (float g : grad) sq += static_cast<double>(g) * g;
        const double gnorm = std::sqrt(sq);
        const float clip = (o.clip_norm > 0 && gnorm > o.clip_norm) ? static_cast<float>(o.clip_norm / gnorm) : 1.0f;
        lr = learning_rate(o, step, steps_per_epoch);
        ++step;
        const double bias1 = 1.0 - std::pow(o.beta1, static_cast<double>(step));
        const double bias2 = 1.0 - std::pow(o.beta2, static_cast<double>(step));
        const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2);
        const float step_size = static_cast<float>(lr / bias1);
        const float inv_bias2 = static_cast<float>(1.0 / bias2);
        const float decay = static_cast<float>(lr * o.weight_decay);
        const float eps = static_cast<float>(o.adam_eps);
        for (size_t i = 0; i < P; ++i) {
          const float g = grad[i] * clip;
          m[i] = b1 * m[i] + (1.0f - b1) * g;
          v[i] = b2 * v[i] + (1.0f - b2) * g * g;
          if (decays[i]) params[i] -= decay * params[i];
          params[i] -= step_size * m[i] / (std::sqrt(v[i] * inv_bias2) + eps);
        }
        loss_sum += batch_loss * static_cast<double>(labelled);
        label_sum += labelled;
        norm_sum += gnorm;
        ++steps;
      }
      if (on_batch && !on_batch(s, steps_per_epoch)) {
        result.interrupted = true;
        break;
      }
    }
    EpochStats stats;
    stats.epoch = epoch;
    stats.train_loss = label_sum ? loss_sum / static_cast<double>(label_sum) : std::nan("");
    stats.lr = lr;
    stats.grad_norm = steps ? norm_sum / static_cast<double>(steps) : 0.0;
    stats.val_loss = std::nan("");
    stats.val_mape.assign(static_cast<size_t>(T), std::nan(""));
    if (has_val) {
      const Evaluation ev = evaluate(net, *val, val_labels, o.threads);
      stats.val_loss = ev.loss;
      stats.val_mape = ev.mape;
      if (ev.loss < best_loss) {
        best_loss = ev.loss;
        best_params = params;
        result.best_epoch = epoch;
        stats.best = true;
      }
    }
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    result.history.push_back(stats);
    if (result.interrupted) break;  // a partial epoch: the state stays at the last whole one
    const bool stop_early = has_val && o.patience > 0 && epoch - result.best_epoch >= o.patience;
    result.stopped_early = stop_early;
    if (state) {
      state->epochs_done = epoch;
      state->step = step;
      state->m = m;
      state->v = v;
      if (stats.best) state->best_params = best_params;
      state->best_loss = best_loss;
      state->result = result;
    }
    if (on_epoch && !on_epoch(stats)) {
      result.interrupted = true;
      break;
    }
    if (stop_early) break;
  }
  if (!best_params.empty()) params = std::move(best_params);
  return result;
}

}  // namespace perfsage

// Mutation tests on the real models: truncations at many offsets and random byte flips. Each case
// must end in a perfsage::Error or a graph whose invariants hold; anything else (another exception,
// a crash, a sanitizer report in the asan build) fails. The flips favour the flatbuffer's structure
// over weight data, where a flip changes nothing the reader looks at.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "perfsage/error.h"
#include "perfsage/features.h"
#include "perfsage/graph.h"
#include "perfsage/tflite_generated.h"
#include "perfsage/writer.h"
#include "test_models.h"
#include "utf8.h"

namespace perfsage {
namespace {

bool valid_utf8(const std::string& text) { return utf8_sanitize(text) == text; }

// Every string the reader took from the file, and every message, must be valid UTF-8 whatever
// the bytes were: a binding decodes them strictly.
void expect_valid_text(const Model& model, const std::string& label) {
  EXPECT_TRUE(valid_utf8(model.description)) << label;
  for (const Subgraph& sg : model.subgraphs) {
    EXPECT_TRUE(valid_utf8(sg.name)) << label;
    for (const Tensor& t : sg.tensors) EXPECT_TRUE(valid_utf8(t.name)) << label;
    for (const Operator& op : sg.operators) EXPECT_TRUE(valid_utf8(op.custom_code)) << label;
  }
}

struct Outcome {
  int errors = 0;
  int graphs = 0;
};

void check_case(const std::vector<uint8_t>& bytes, const std::string& label, Outcome& outcome) {
  std::shared_ptr<const Graph> graph;
  try {
    graph = load_graph(bytes.data(), bytes.size(), label);
  } catch (const Error& e) {
    EXPECT_TRUE(valid_utf8(e.what())) << label;
    ++outcome.errors;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << label << ": unexpected " << typeid(e).name() << ": " << e.what();
    return;
  }
  ++outcome.graphs;
  expect_valid_text(graph->model(), label);
  ASSERT_GT(graph->num_nodes(), 0) << label;
  ASSERT_EQ(graph->node_features().size(), node_feature_names().size() * graph->num_nodes()) << label;
  const auto& ei = graph->edge_index();
  for (int64_t e = 0; e < graph->num_edges(); ++e) {
    ASSERT_LT(ei[e], ei[graph->num_edges() + e]) << label;
    ASSERT_LT(ei[graph->num_edges() + e], graph->num_nodes()) << label;
  }
  for (float v : graph->node_features()) ASSERT_FALSE(std::isnan(v)) << label;
  for (float v : graph->graph_features()) ASSERT_FALSE(std::isnan(v)) << label;
}

// Byte ranges holding constant data; flips there are mostly uninteresting.
std::vector<std::pair<size_t, size_t>> data_ranges(const std::vector<uint8_t>& bytes) {
  std::vector<std::pair<size_t, size_t>> ranges;
  const auto* model = tflite::GetModel(bytes.data());
  if (!model->buffers()) return ranges;
  for (const auto* buffer : *model->buffers())
    if (buffer->data() && buffer->data()->size() > 0) {
      const auto begin = static_cast<size_t>(buffer->data()->data() - bytes.data());
      ranges.emplace_back(begin, begin + buffer->data()->size());
    }
  return ranges;
}

TEST(Fuzz, TruncatedAndBitFlippedRealModels) {
  const auto models = testing::real_models();
  if (models.empty()) {
    if (testing::data_required()) FAIL() << "shared data folder missing (set PERFSAGE_DATA)";
    GTEST_SKIP() << "shared data folder missing (set PERFSAGE_DATA)";
  }
  std::mt19937_64 rng(20261121);
  Outcome outcome;
  int cases = 0;
  for (const auto& path : models) {
    const auto original = testing::read_bytes(path);
    const std::string name = path.substr(path.find_last_of('/') + 1);
    // Truncations: every byte of the header region, then about 150 offsets spread over the file.
    const size_t step = std::max<size_t>(1, original.size() / 150);
    for (size_t n = 0; n < original.size(); n += (n < 64 ? 1 : step)) {
      check_case(std::vector<uint8_t>(original.begin(), original.begin() + static_cast<long>(n)),
                 name + " truncated to " + std::to_string(n), outcome);
      ++cases;
    }
    // Flips: 1 to 4 random bytes, three out of four outside constant data.
    const auto ranges = data_ranges(original);
    auto in_data = [&](size_t pos) {
      for (const auto& [b, e] : ranges)
        if (pos >= b && pos < e) return true;
      return false;
    };
    std::uniform_int_distribution<size_t> position(0, original.size() - 1);
    std::uniform_int_distribution<int> count(1, 4), value(0, 255), choose(0, 3);
    for (int trial = 0; trial < 800; ++trial) {
      auto mutated = original;
      const int flips = count(rng);
      const bool structural = choose(rng) != 0;
      for (int f = 0; f < flips; ++f) {
        size_t pos = position(rng);
        for (int tries = 0; structural && in_data(pos) && tries < 100; ++tries) pos = position(rng);
        mutated[pos] = static_cast<uint8_t>(value(rng));
      }
      check_case(mutated, name + " flip trial " + std::to_string(trial), outcome);
      ++cases;
    }
  }
  // Both outcomes must occur, or the mutations are not reaching the reader's checks.
  EXPECT_GT(outcome.errors, 1000);
  EXPECT_GT(outcome.graphs, 100);
  std::printf("fuzz: %d cases, %d clean errors, %d valid graphs\n", cases, outcome.errors, outcome.graphs);
}

// Byte ranges holding tensor names.
std::vector<std::pair<size_t, size_t>> name_ranges(const std::vector<uint8_t>& bytes) {
  std::vector<std::pair<size_t, size_t>> ranges;
  const auto* model = tflite::GetModel(bytes.data());
  for (const auto* sg : *model->subgraphs())
    if (sg->tensors())
      for (const auto* t : *sg->tensors())
        if (t->name() && t->name()->size() > 0) {
          const auto begin = static_cast<size_t>(reinterpret_cast<const uint8_t*>(t->name()->data()) - bytes.data());
          ranges.emplace_back(begin, begin + t->name()->size());
        }
  return ranges;
}

TEST(Fuzz, IllFormedNamesInRealAndGeneratedModels) {
  // A name that is not UTF-8 leaves a model valid (issue 12 found three in byte mutations of real
  // models): it must load with valid UTF-8 names, and the messages of models that also have a
  // structural flip must be valid UTF-8 too.
  std::vector<std::pair<std::string, std::vector<uint8_t>>> models;
  models.emplace_back("writer int8", build_model_json(
      R"({"inputs": [{"name": "x", "shape": [1, 8, 8, 3]}], "layers": [
          {"name": "c", "op": "conv2d", "filters": 4, "kernel": 3},
          {"name": "p", "op": "global_avg_pool"}, {"name": "f", "op": "reshape", "shape": [1, 4]},
          {"name": "d", "op": "dense", "units": 2}, {"name": "s", "op": "softmax"}]})",
      1, WeightType::kInt8));
  for (const auto& path : testing::real_models())
    models.emplace_back(path.substr(path.find_last_of('/') + 1), testing::read_bytes(path));
  std::mt19937_64 rng(20261201);
  std::uniform_int_distribution<int> high_byte(0x80, 0xFF), count(1, 3), choose(0, 1);
  Outcome outcome;
  int named_models = 0;
  for (const auto& [name, original] : models) {
    const auto names = name_ranges(original);
    if (names.empty()) continue;  // some real models have no tensor names at all
    ++named_models;
    std::uniform_int_distribution<size_t> which(0, names.size() - 1), position(0, original.size() - 1);
    for (int trial = 0; trial < 100; ++trial) {
      auto mutated = original;
      // Trial 0: the byte issue 12 reported, in the first name.
      if (trial == 0) mutated[names[0].first] = 0xB7;
      for (int k = 0; trial > 0 && k < count(rng); ++k) {
        const auto [begin, end] = names[which(rng)];
        std::uniform_int_distribution<size_t> in_name(begin, end - 1);
        for (int f = 0; f < count(rng); ++f) mutated[in_name(rng)] = static_cast<uint8_t>(high_byte(rng));
      }
      const std::string label = name + " name trial " + std::to_string(trial);
      if (trial % 2 == 0) {
        const auto graph = load_graph(mutated.data(), mutated.size(), label);  // must not throw
        expect_valid_text(graph->model(), label);
        continue;
      }
      if (choose(rng)) mutated[position(rng)] = static_cast<uint8_t>(high_byte(rng));
      check_case(mutated, label, outcome);
    }
  }
  EXPECT_GT(named_models, 0);
}

}  // namespace
}  // namespace perfsage

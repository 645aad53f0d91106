// Graph IR tests: edges, schedules, control flow, lifetimes, batch loading.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "perfsage/error.h"
#include "perfsage/features.h"
#include "perfsage/graph.h"
#include "perfsage/ops.h"
#include "test_models.h"

namespace perfsage {
namespace {

using testing::build_model;
using testing::OptionsKind;
using testing::TestOp;
using testing::TestSubgraph;

std::shared_ptr<const Graph> load(const std::vector<TestSubgraph>& sgs) {
  const auto bytes = build_model(sgs);
  return load_graph(bytes.data(), bytes.size(), "test.tflite");
}

void expect_error(const std::vector<TestSubgraph>& sgs, const std::string& fragment) {
  testing::expect_load_error(build_model(sgs), {fragment});
}

std::vector<std::pair<int64_t, int64_t>> edges(const Graph& g) {
  std::vector<std::pair<int64_t, int64_t>> out;
  const auto& ei = g.edge_index();
  for (int64_t e = 0; e < g.num_edges(); ++e) out.emplace_back(ei[e], ei[g.num_edges() + e]);
  return out;
}

// Diamond: x -> relu(a) ; x -> tanh(b) ; add(a, b) -> y ; mul(y, y) -> z.
// Tensor bytes (float32, shape [1, n]): x 400, a 400, b 400, y 400, z 400.
TestSubgraph diamond() {
  TestSubgraph sg;
  sg.tensors = {{{1, 100}}, {{1, 100}}, {{1, 100}}, {{1, 100}}, {{1, 100}}};
  sg.ops = {{op_code("RELU"), {0}, {1}},
            {op_code("TANH"), {0}, {2}},
            {op_code("ADD"), {1, 2}, {3}},
            {op_code("MUL"), {3, 3}, {4}}};
  sg.inputs = {0};
  sg.outputs = {4};
  return sg;
}

TEST(Graph, EdgesFollowTensorsOncePerNodePair) {
  // MUL reads the same tensor twice: one edge, not two.
  const auto g = load({diamond()});
  EXPECT_EQ(edges(*g), (std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {1, 2}, {2, 3}}));
  EXPECT_EQ(g->totals().longest_path, 3);
}

TEST(Graph, PeakActivationFromLifetimes) {
  // x lives until TANH (step 1), a and b until ADD (step 2): peak x+a+b = 1200 at step 1.
  const auto g = load({diamond()});
  EXPECT_EQ(g->totals().peak_activation_bytes, 1200);
  EXPECT_EQ(g->totals().input_bytes, 400);
  EXPECT_EQ(g->totals().output_bytes, 400);
  EXPECT_EQ(g->totals().activation_bytes, 2000);
}

TEST(Graph, RejectsEmptyGraph) {
  TestSubgraph sg;
  sg.tensors = {{{1}}};
  sg.inputs = {0};
  sg.outputs = {0};
  expect_error({sg}, "subgraph 0 has no operators (empty graph)");
}

TEST(Graph, RejectsOperatorReadingItsOwnOutput) {
  auto sg = diamond();
  sg.ops[2].inputs = {1, 3};
  expect_error({sg}, "subgraph 0, operator 2 (ADD): reads its own output tensor 3 't3'");
}

TEST(Graph, RejectsReadBeforeWrite) {
  auto sg = diamond();
  sg.ops[0].inputs = {3};  // RELU reads ADD's output, which is written later
  expect_error({sg}, "operator 0 (RELU): reads tensor 3 't3' before operator 2 writes it");
}

TEST(Graph, RejectsTensorWrittenTwice) {
  auto sg = diamond();
  sg.ops[1].outputs = {1};
  expect_error({sg}, "operator 1 (TANH): writes tensor 1 't1', already written by operator 0");
}

// Main: ADD(x, x) -> y ; WHILE(y) -> z ; MUL(z, z) -> w. cond (1): LESS ; body (2): ADD.
std::vector<TestSubgraph> while_model() {
  TestSubgraph main;
  main.tensors = {{{1, 4}}, {{1, 4}}, {{1, 4}}, {{1, 4}}};
  TestOp loop{op_code("WHILE"), {1}, {2}, OptionsKind::kWhile};
  loop.subgraphs = {1, 2};
  main.ops = {{op_code("ADD"), {0, 0}, {1}}, loop, {op_code("MUL"), {2, 2}, {3}}};
  main.inputs = {0};
  main.outputs = {3};
  TestSubgraph cond;
  cond.tensors = {{{1, 4}}, {{1, 4}, 0, 16}, {{1, 4}, 6}};
  cond.ops = {{op_code("LESS"), {0, 1}, {2}}};
  cond.inputs = {0};
  cond.outputs = {2};
  TestSubgraph body;
  body.tensors = {{{1, 4}}, {{1, 4}}};
  body.ops = {{op_code("ADD"), {0, 0}, {1}}};
  body.inputs = {0};
  body.outputs = {1};
  return {main, cond, body};
}

TEST(Graph, ControlFlowBodiesAreNodes) {
  // The WHILE's condition and body follow it as nodes one call deeper, wired in and out.
  const auto g = load(while_model());
  ASSERT_EQ(g->num_nodes(), 5);
  const auto& n = g->nodes();
  EXPECT_EQ(n[2].subgraph, 1);
  EXPECT_EQ(n[2].call_depth, 1);
  EXPECT_EQ(n[2].caller, 1);
  EXPECT_EQ(n[3].subgraph, 2);
  EXPECT_EQ(n[4].subgraph, 0);
  EXPECT_EQ(n[4].op_index, 2);
  // 0->1 data; 1->2 and 1->3 into cond and body; 1->4 data; 3->4 from the body's output.
  EXPECT_EQ(edges(*g), (std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {1, 2}, {1, 3}, {1, 4}, {3, 4}}));
  EXPECT_EQ(g->totals().longest_path, 4);  // ADD, WHILE, body ADD, MUL
}

TEST(Graph, RejectsRecursiveControlFlow) {
  auto sgs = while_model();
  TestOp again{op_code("WHILE"), {0}, {1}, OptionsKind::kWhile};
  again.subgraphs = {1, 2};
  sgs[2].ops = {again};  // the body runs the loop again
  expect_error(sgs, "subgraph 2, operator 0 (WHILE): calls subgraph 2, which is already running");
}

TEST(Graph, RejectsCallToMissingSubgraph) {
  auto sgs = while_model();
  sgs[0].ops[1].subgraphs = {1, 7};
  expect_error(sgs, "operator 1 (WHILE): calls subgraph 7 but the model has 3 subgraphs");
}

// Converters write a negative axis (-1) where perfsage's writer writes rank - 1; the axis feature
// counts from the front either way, from the output's rank for CONCATENATION and PACK (whose output
// has one dimension more than its inputs).
TEST(Graph, NegativeAxisCountsFromTheFront) {
  auto axis_feature = [](int32_t code, OptionsKind kind, int32_t axis, std::vector<std::vector<int32_t>> shapes) {
    TestSubgraph sg;
    for (auto& shape : shapes) sg.tensors.push_back({shape});
    const int32_t out = static_cast<int32_t>(shapes.size()) - 1;
    TestOp op{code, {}, {out}, kind};
    for (int32_t i = 0; i < out; ++i) op.inputs.push_back(i);
    op.axis = axis;
    sg.ops = {op};
    sg.inputs = std::vector<int32_t>(op.inputs);
    sg.outputs = {out};
    const auto g = load({sg});
    const auto& names = node_feature_names();
    const auto column = std::find(names.begin(), names.end(), "axis") - names.begin();
    return g->node_features()[static_cast<size_t>(column)];
  };
  const int32_t concat = op_code("CONCATENATION"), pack = op_code("PACK");
  const std::vector<std::vector<int32_t>> nhwc = {{1, 4, 4, 3}, {1, 4, 4, 5}, {1, 4, 4, 8}};
  EXPECT_EQ(axis_feature(concat, OptionsKind::kConcatenation, -1, nhwc), 3.0f);
  EXPECT_EQ(axis_feature(concat, OptionsKind::kConcatenation, 3, nhwc), 3.0f);
  EXPECT_EQ(axis_feature(concat, OptionsKind::kConcatenation, -3, {{1, 2, 6}, {1, 3, 6}, {1, 5, 6}}), 0.0f);
  const std::vector<std::vector<int32_t>> packed = {{2, 3}, {2, 3}, {2, 3, 2}};
  EXPECT_EQ(axis_feature(pack, OptionsKind::kPack, -1, packed), 2.0f);
  EXPECT_EQ(axis_feature(pack, OptionsKind::kPack, 2, packed), 2.0f);
}

TEST(Graph, FeaturesAreDeterministic) {
  // Same bytes, same features, bit for bit.
  const auto bytes = build_model(while_model());
  const auto a = load_graph(bytes.data(), bytes.size(), "a");
  const auto b = load_graph(bytes.data(), bytes.size(), "b");
  ASSERT_EQ(a->node_features().size(), b->node_features().size());
  EXPECT_EQ(std::memcmp(a->node_features().data(), b->node_features().data(),
                        a->node_features().size() * sizeof(float)), 0);
  EXPECT_EQ(a->graph_features(), b->graph_features());
}

TEST(LoadMany, ParallelMatchesSequentialAndReportsErrorsPerItem) {
  // Threads change nothing but speed; a bad item fails alone, in its own slot.
  const auto good = build_model({diamond()});
  const auto flow = build_model(while_model());
  std::vector<uint8_t> bad(good.begin(), good.begin() + 40);
  std::vector<LoadItem> items;
  for (int i = 0; i < 50; ++i) {
    const auto& bytes = i % 5 == 3 ? bad : (i % 2 ? flow : good);
    items.push_back(LoadItem{"", bytes.data(), bytes.size(), "item" + std::to_string(i)});
  }
  items.push_back(LoadItem{"/nonexistent.tflite"});
  const auto serial = load_many(items, 1);
  const auto parallel = load_many(items, 4);
  ASSERT_EQ(serial.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(serial[i].error, parallel[i].error);
    const bool should_fail = i == items.size() - 1 || i % 5 == 3;
    EXPECT_EQ(serial[i].graph == nullptr, should_fail);
    if (should_fail) {
      EXPECT_FALSE(serial[i].error.empty());
      continue;
    }
    EXPECT_EQ(serial[i].graph->node_features(), parallel[i].graph->node_features());
    EXPECT_EQ(serial[i].graph->edge_index(), parallel[i].graph->edge_index());
  }
  EXPECT_NE(serial[3].error.find("item3: "), std::string::npos) << serial[3].error;
}

}  // namespace
}  // namespace perfsage

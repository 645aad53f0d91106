// InlineVec (cpp/include/perfsage/inline_vec.h): values inline up to N, on the heap past it, and
// copies, moves and growth that keep every value whichever side they are on. The ASan build runs
// these too, so a lost heap block or a read past the inline storage fails there.
#include <gtest/gtest.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "perfsage/inline_vec.h"

namespace perfsage {
namespace {

using Small = InlineVec<int32_t, 3>;

std::vector<int32_t> values(const Small& v) { return v.to_vector(); }

TEST(InlineVec, KeepsValuesInlineUpToNAndOnTheHeapPastIt) {
  Small v{1, 2, 3};
  EXPECT_EQ(v.capacity(), 3u);
  const int32_t* inline_data = v.data();
  v.push_back(4);
  EXPECT_NE(v.data(), inline_data);
  EXPECT_EQ(values(v), (std::vector<int32_t>{1, 2, 3, 4}));
  for (int32_t i = 5; i <= 40; ++i) v.push_back(v[static_cast<size_t>(i) - 5]);  // a value of its own
  ASSERT_EQ(v.size(), 40u);
  for (size_t i = 4; i < 40; ++i) EXPECT_EQ(v[i], v[i - 4]);
  v.resize(2);
  EXPECT_EQ(values(v), (std::vector<int32_t>{1, 2}));
  v.resize(4, 9);
  EXPECT_EQ(values(v), (std::vector<int32_t>{1, 2, 9, 9}));
  v.assign(size_t{2}, 7);
  EXPECT_EQ(values(v), (std::vector<int32_t>{7, 7}));
  v.clear();
  EXPECT_TRUE(v.empty());
}

TEST(InlineVec, InsertsAndErasesAnywhereAcrossTheInlineLimit) {
  Small v{1, 3};
  v.insert(v.begin() + 1, 2);
  EXPECT_EQ(values(v), (std::vector<int32_t>{1, 2, 3}));
  v.insert(v.begin(), v[2]);  // past N, a value of its own
  EXPECT_EQ(values(v), (std::vector<int32_t>{3, 1, 2, 3}));
  v.insert(v.end(), 4);
  EXPECT_EQ(values(v), (std::vector<int32_t>{3, 1, 2, 3, 4}));
  v.erase(v.begin());
  v.erase(v.begin() + 3);
  EXPECT_EQ(values(v), (std::vector<int32_t>{1, 2, 3}));
  v.erase(v.end() - 1);
  EXPECT_EQ(values(v), (std::vector<int32_t>{1, 2}));
}

TEST(InlineVec, CopiesAndMovesKeepTheValuesOnEitherSide) {
  for (const std::vector<int32_t>& source : {std::vector<int32_t>{}, {5}, {1, 2, 3}, {1, 2, 3, 4, 5, 6, 7}}) {
    const Small original(source);
    EXPECT_EQ(original, source);
    Small copy = original;
    EXPECT_EQ(copy, original);
    Small moved = std::move(copy);
    EXPECT_EQ(moved, original);
    EXPECT_TRUE(copy.empty());  // NOLINT: a moved-from InlineVec is empty and usable
    copy.push_back(8);
    EXPECT_EQ(values(copy), std::vector<int32_t>{8});
    Small assigned{9, 9, 9, 9, 9};
    assigned = moved;
    EXPECT_EQ(assigned, original);
    assigned = std::move(moved);
    EXPECT_EQ(assigned, original);
    assigned = assigned;  // NOLINT: self-assignment keeps the values
    EXPECT_EQ(assigned, original);
    Small from_vector;
    from_vector = source;
    EXPECT_EQ(from_vector, source);
    EXPECT_EQ(Small(source.begin(), source.end()), source);
  }
  EXPECT_NE(Small({1, 2}), Small({1, 3}));
  EXPECT_NE(Small({1, 2}), Small({1, 2, 3}));
}

}  // namespace
}  // namespace perfsage

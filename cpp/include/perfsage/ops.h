// The operator vocabulary: one slot per TFLite builtin operator code.
//
// The op-type index of a node is its TFLite builtin code, so the vocabulary is stable across perfsage
// versions as long as the schema only grows at the end (which is how the TFLite format evolves).
// Custom operators (any custom_code, e.g. Vela's "ethos-u") share the CUSTOM slot (code 32); their
// custom_code string is kept on the operator.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace perfsage {

constexpr int32_t kCustomOpCode = 32;

// Number of slots: one more than the largest builtin code the schema knows.
int32_t op_vocabulary_size();

// Stable upper-case name of a builtin code ("CONV_2D"); throws std::out_of_range if unknown.
const std::string& op_name(int32_t builtin_code);

// All names, indexed by builtin code.
const std::vector<std::string>& op_names();

// Code for a name, or -1.
int32_t op_code(const std::string& name);

// Operator families: groups of ops whose cost follows the same shape (convolutions, matrix
// products, elementwise arithmetic, data movement, ...). The network's family embedding lets an
// op type it never saw in training be priced as a member of its family. Family 0 is "other"
// (custom ops and every op the table below does not name). Adding families or members changes
// what a trained network reads, so the table only grows at the end.
int32_t op_family_count();
int32_t op_family(int32_t builtin_code);           // 0 for codes outside the vocabulary
const std::string& op_family_name(int32_t family);  // throws std::out_of_range if unknown

}  // namespace perfsage

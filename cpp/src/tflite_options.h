// How the reader turns an operator's builtin options table into OperatorOptions (tflite_reader.cpp).
// The writer's spec path (writer_graph.cpp) reads the options it would write through the same
// function, so a Model built without a flatbuffer has exactly the options a read one has.
#pragma once

#include "perfsage/model.h"
#include "perfsage/tflite_generated.h"

namespace perfsage {

// Fills the fields of `o` that `op`'s builtin options set; `op` must be verified (or built here).
void read_options(const tflite::Operator& op, OperatorOptions& o);

}  // namespace perfsage

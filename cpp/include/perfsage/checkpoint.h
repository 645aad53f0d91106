// perfsage's checkpoint file: a trained network with everything needed to use and retrace it.
//
// Layout (little-endian):
//   magic "PSAGECKP" (8 bytes) | format version u32 | reserved u32 (0) | payload size u64 |
//   FNV-1a 64 checksum of the payload u64 | payload
// payload:
//   header size u32 | header: JSON text (format version, feature schema version, network
//   configuration, training options, target names and units, parameter layout, provenance)
//   | float32 arrays: node_mean, node_std, graph_mean, graph_std, target_mean, target_std,
//   then every parameter in layout order; then, when the header names a companion network (its
//   configuration and layout), the same arrays of the companion.
// Reading checks each of these in turn and names the first that is wrong: not a checkpoint, a
// newer format, truncated, corrupted (checksum), a different feature schema, an inconsistent
// layout. Floats are stored as their bits, so a save/load round trip is exact.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "perfsage/sage.h"
#include "perfsage/train.h"

namespace perfsage {

// Format 2 added the additive readout's configuration fields (see checkpoint.cpp); a network
// without them is still written as format 1. Format 3 added the companion: a second, smaller
// network trained on the same data, whose disagreement with the first scales prediction
// intervals; a file without one is written as format 1 or 2 as before.
constexpr uint32_t kCheckpointFormatVersion = 3;

struct ModelInfo {
  std::vector<std::string> target_names;
  std::vector<std::string> target_units;  // "" where unknown
  TrainOptions options;                   // how it was (or will be) trained
  std::string provenance_json = "{}";     // a JSON object: data, dates, versions, history summary
};

struct Checkpoint {
  SageNetwork network;
  ModelInfo info;
  std::optional<SageNetwork> companion;  // same targets and features as `network`
};

std::vector<uint8_t> checkpoint_bytes(const SageNetwork& net, const ModelInfo& info,
                                      const SageNetwork* companion = nullptr);
// `source` names the bytes in error messages (usually the path).
Checkpoint read_checkpoint(const uint8_t* data, size_t size, const std::string& source);

// Writes to `path` through a temporary file and a rename, so a crash never leaves half a file.
void save_checkpoint(const std::string& path, const SageNetwork& net, const ModelInfo& info);
Checkpoint load_checkpoint(const std::string& path);

}  // namespace perfsage

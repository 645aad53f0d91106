#include "perfsage/checkpoint.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <type_traits>

#include "perfsage/error.h"
#include "perfsage/features.h"
#include "perfsage/json.h"

namespace perfsage {
namespace {

constexpr char kMagic[8] = {'P', 'S', 'A', 'G', 'E', 'C', 'K', 'P'};
constexpr size_t kPreamble = 8 + 4 + 4 + 8 + 8;

uint64_t fnv1a64(const uint8_t* data, size_t size) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; ++i) {
    h ^= data[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

template <typename T>
void put(std::vector<uint8_t>& out, T value) {
  uint8_t bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // the formats are little-endian, as every target is
  out.insert(out.end(), bytes, bytes + sizeof(T));
}

template <typename T>
T get(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// A field's value as the header writes it.
std::string json_value(int32_t v) { return std::to_string(v); }
std::string json_value(double v) { return number(v); }
std::string json_value(bool v) { return v ? "true" : "false"; }
std::string json_value(uint64_t v) { return quote(std::to_string(v)); }  // JSON numbers lose 64 bits
template <typename Enum, typename = std::enable_if_t<std::is_enum_v<Enum>>>
std::string json_value(Enum v) {
  return quote(to_string(v));
}

// Configuration fields that format 2 added. A format-1 checkpoint lacks them and gets their
// defaults, which are format 1's behaviour; a network that keeps those defaults is still written
// as format 1, so files of older perfsage versions load and save back to the same bytes.
bool since_format_2(const std::string& name) {
  return name == "readout" || name == "max_targets" || name == "family_dim" || name == "node_loss_weight" ||
         name == "node_log_weight" || name == "node_graph_context";
}

bool format_1_config(const SageConfig& c) {
  const SageConfig defaults;
  return c.readout == defaults.readout && c.max_targets == defaults.max_targets &&
         c.family_dim == defaults.family_dim && c.node_loss_weight == defaults.node_loss_weight &&
         c.node_log_weight == defaults.node_log_weight && c.node_graph_context == defaults.node_graph_context;
}

// The oldest format that holds the file: 3 with a companion, else 1 or 2 by the configuration.
uint32_t format_version_of(const SageConfig& c, const SageNetwork* companion) {
  if (companion) return 3;
  return format_1_config(c) ? 1 : 2;
}

// A configuration struct as a JSON object, its fields in table order (those of `version`).
template <typename Struct>
std::string fields_json(const Struct& s, uint32_t version) {
  std::string j;
  Struct::for_each_field([&](auto field) {
    if (version < 2 && since_format_2(field.name)) return;
    j += (j.empty() ? "{" : ",") + quote(field.name) + ":" + json_value(s.*field.member);
  });
  return j + "}";
}

// The feature schema whose node columns a network reads: the one with its node feature count (a
// network loaded from an older schema's checkpoint is saved as that schema again). A count of no
// schema is written as the current one, which reading then refuses, naming both counts.
int32_t feature_schema_of(const SageConfig& c) {
  for (int32_t schema = kFeatureSchemaVersion; schema >= 1; --schema)
    if (node_feature_count(schema) == c.num_node_features) return schema;
  return kFeatureSchemaVersion;
}

std::string layout_json(const SageNetwork& net) {
  std::string j = "[";
  bool first = true;
  for (const ParamInfo& p : net.layout().params()) {
    if (!first) j += ",";
    first = false;
    j += "[" + quote(p.name) + "," + std::to_string(p.rows) + "," + std::to_string(p.cols) + "]";
  }
  return j + "]";
}

std::string header_json(const SageNetwork& net, const ModelInfo& info, const SageNetwork* companion) {
  const SageConfig& c = net.config();
  const TrainOptions& o = info.options;
  const uint32_t version = format_version_of(c, companion);
  std::string j = "{";
  j += "\"format_version\":" + std::to_string(version);
  j += ",\"feature_schema_version\":" + std::to_string(feature_schema_of(c));
  j += ",\"config\":" + fields_json(c, version);
  j += ",\"options\":" + fields_json(o, version);
  j += ",\"targets\":[";
  for (size_t t = 0; t < info.target_names.size(); ++t) {
    if (t) j += ",";
    j += "{\"name\":" + quote(info.target_names[t]) + ",\"unit\":" + quote(info.target_units[t]) + "}";
  }
  j += "],\"layout\":" + layout_json(net);
  if (companion)
    j += ",\"companion\":{\"config\":" + fields_json(companion->config(), version) +
         ",\"layout\":" + layout_json(*companion) + "}";
  j += ",\"provenance\":" + info.provenance_json + "}";
  return j;
}

// Field access on the parsed header, with errors that name the checkpoint and the field.
struct Fields {
  const JsonValue& object;
  std::string where;

  const JsonValue& at(const char* key, JsonValue::Kind kind) const {
    const JsonValue* v = object.find(key);
    if (!v) throw Error(where + ": missing field '" + key + "'");
    if (v->kind != kind) throw Error(where + ": field '" + key + "' has the wrong type");
    return *v;
  }
  double num(const char* key) const { return at(key, JsonValue::Kind::kNumber).number; }
  int32_t integer(const char* key) const {
    const double v = num(key);
    if (v != std::floor(v) || std::abs(v) > 2147483647.0)
      throw Error(where + ": field '" + key + "' is not a 32-bit integer");
    return static_cast<int32_t>(v);
  }
  bool boolean(const char* key) const { return at(key, JsonValue::Kind::kBool).boolean; }
  const std::string& text(const char* key) const { return at(key, JsonValue::Kind::kString).text; }
  Fields sub(const char* key) const { return {at(key, JsonValue::Kind::kObject), where + " " + key}; }
};

void read_value(const Fields& f, const char* key, int32_t& out) { out = f.integer(key); }
void read_value(const Fields& f, const char* key, double& out) { out = f.num(key); }
void read_value(const Fields& f, const char* key, bool& out) { out = f.boolean(key); }
void read_value(const Fields& f, const char* key, uint64_t& out) {
  try {
    out = std::stoull(f.text(key));
  } catch (const std::logic_error&) {
    throw Error(f.where + ": field '" + key + "' is not an unsigned integer");
  }
}
template <typename Enum, typename = std::enable_if_t<std::is_enum_v<Enum>>>
void read_value(const Fields& f, const char* key, Enum& out) {
  out = parse_enum(f.text(key), f.where + " " + key, Enum{});
}

// Every field of a configuration struct from its JSON object; each that `version` has is required.
template <typename Struct>
void read_fields(const Fields& f, Struct& s, uint32_t version) {
  Struct::for_each_field([&](auto field) {
    if (version < 2 && since_format_2(field.name)) return;
    read_value(f, field.name, s.*field.member);
  });
}

std::string json_of(const JsonValue& v) {
  switch (v.kind) {
    case JsonValue::Kind::kNull: return "null";
    case JsonValue::Kind::kBool: return v.boolean ? "true" : "false";
    case JsonValue::Kind::kNumber: return number(v.number);
    case JsonValue::Kind::kString: return quote(v.text);
    case JsonValue::Kind::kArray: {
      std::string s = "[";
      for (size_t i = 0; i < v.items.size(); ++i) s += (i ? "," : "") + json_of(v.items[i]);
      return s + "]";
    }
    case JsonValue::Kind::kObject: {
      std::string s = "{";
      for (size_t i = 0; i < v.members.size(); ++i)
        s += (i ? "," : "") + quote(v.members[i].first) + ":" + json_of(v.members[i].second);
      return s + "}";
    }
  }
  return "null";
}

// A companion reads the network's features and predicts its targets.
bool fits_as_companion(const SageConfig& companion, const SageConfig& c) {
  return companion.num_targets == c.num_targets && companion.num_node_features == c.num_node_features &&
         companion.num_graph_features == c.num_graph_features && companion.vocabulary == c.vocabulary;
}

// A network's float32 arrays in file order: normalisation, then parameters.
void put_network(std::vector<uint8_t>& payload, const SageNetwork& net) {
  const Normalization& n = net.normalization();
  for (const std::vector<float>* v : {&n.node_mean, &n.node_std, &n.graph_mean, &n.graph_std,
                                      &n.target_mean, &n.target_std, &net.parameters()})
    for (float x : *v) put<float>(payload, x);
}

size_t network_floats(const SageNetwork& net) {
  const SageConfig& c = net.config();
  return 2 * static_cast<size_t>(c.num_node_features) + 2 * static_cast<size_t>(c.num_graph_features) +
         2 * static_cast<size_t>(c.num_targets) + static_cast<size_t>(net.layout().size());
}

// Reads put_network's arrays into `net` from `p`, which it advances.
void take_network(const uint8_t*& p, SageNetwork& net) {
  const SageConfig& c = net.config();
  auto take = [&p](std::vector<float>& v, size_t count) {
    v.resize(count);
    std::memcpy(v.data(), p, count * sizeof(float));
    p += count * sizeof(float);
  };
  Normalization& n = net.normalization();
  const size_t F = static_cast<size_t>(c.num_node_features), G = static_cast<size_t>(c.num_graph_features);
  const size_t T = static_cast<size_t>(c.num_targets);
  take(n.node_mean, F);
  take(n.node_std, F);
  take(n.graph_mean, G);
  take(n.graph_std, G);
  take(n.target_mean, T);
  take(n.target_std, T);
  take(net.parameters(), static_cast<size_t>(net.layout().size()));
}

// The header's parameter list must be the one `net`'s configuration lays out.
void check_layout(const JsonValue& layout, const SageNetwork& net, const std::string& where) {
  const auto& params = net.layout().params();
  if (layout.items.size() != params.size())
    throw Error(where + " lists " + std::to_string(layout.items.size()) + " parameters, its configuration has " +
                std::to_string(params.size()));
  for (size_t i = 0; i < params.size(); ++i) {
    const JsonValue& e = layout.items[i];
    if (e.kind != JsonValue::Kind::kArray || e.items.size() != 3 || e.items[0].text != params[i].name ||
        e.items[1].number != static_cast<double>(params[i].rows) ||
        e.items[2].number != static_cast<double>(params[i].cols))
      throw Error(where + ": parameter " + std::to_string(i) + " in the file does not match '" + params[i].name +
                  "' [" + std::to_string(params[i].rows) + ", " + std::to_string(params[i].cols) +
                  "] of its configuration");
  }
}

}  // namespace

std::vector<uint8_t> checkpoint_bytes(const SageNetwork& net, const ModelInfo& info, const SageNetwork* companion) {
  const SageConfig& c = net.config();
  if (info.target_names.size() != static_cast<size_t>(c.num_targets) ||
      info.target_units.size() != static_cast<size_t>(c.num_targets))
    throw Error("checkpoint: " + std::to_string(info.target_names.size()) + " target names and " +
                std::to_string(info.target_units.size()) + " units for a network with " +
                std::to_string(c.num_targets) + " outputs");
  const JsonValue provenance = parse_json(info.provenance_json, "provenance");
  if (provenance.kind != JsonValue::Kind::kObject) throw Error("checkpoint: provenance must be a JSON object");
  net.check_normalization();
  if (companion) {
    const SageConfig& k = companion->config();
    if (!fits_as_companion(k, c))
      throw Error("checkpoint: the companion network has " + std::to_string(k.num_targets) + " outputs and " +
                  std::to_string(k.num_node_features) + " node features, the network " +
                  std::to_string(c.num_targets) + " and " + std::to_string(c.num_node_features) +
                  " (they must read the same features and predict the same targets)");
    companion->check_normalization();
  }
  // Written in the canonical form reading gives back, so load-then-save reproduces the bytes.
  ModelInfo canonical = info;
  canonical.provenance_json = json_of(provenance);
  const std::string header = header_json(net, canonical, companion);
  std::vector<uint8_t> payload;
  put<uint32_t>(payload, static_cast<uint32_t>(header.size()));
  payload.insert(payload.end(), header.begin(), header.end());
  put_network(payload, net);
  if (companion) put_network(payload, *companion);

  std::vector<uint8_t> out(kMagic, kMagic + 8);
  put<uint32_t>(out, format_version_of(c, companion));
  put<uint32_t>(out, 0);
  put<uint64_t>(out, payload.size());
  put<uint64_t>(out, fnv1a64(payload.data(), payload.size()));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Checkpoint read_checkpoint(const uint8_t* data, size_t size, const std::string& source) {
  if (size < 8 || std::memcmp(data, kMagic, 8) != 0)
    throw Error(source + ": not a perfsage checkpoint (no PSAGECKP magic at the start)");
  if (size < kPreamble) throw Error(source + ": truncated checkpoint (" + std::to_string(size) + " bytes)");
  const uint32_t version = get<uint32_t>(data + 8);
  if (version > kCheckpointFormatVersion)
    throw Error(source + ": checkpoint format version " + std::to_string(version) +
                " is newer than this perfsage reads (" + std::to_string(kCheckpointFormatVersion) +
                "); upgrade perfsage");
  if (version == 0) throw Error(source + ": checkpoint format version 0 is not valid");
  const uint64_t payload_size = get<uint64_t>(data + 16);
  if (payload_size != size - kPreamble)
    throw Error(source + ": truncated or padded checkpoint: the header promises " +
                std::to_string(payload_size) + " payload bytes, the file has " +
                std::to_string(size - kPreamble));
  const uint8_t* payload = data + kPreamble;
  if (fnv1a64(payload, payload_size) != get<uint64_t>(data + 24))
    throw Error(source + ": corrupted checkpoint (checksum mismatch)");
  if (payload_size < 4) throw Error(source + ": checkpoint payload too short");
  const uint32_t header_size = get<uint32_t>(payload);
  if (header_size > payload_size - 4) throw Error(source + ": checkpoint header runs past the payload");
  const std::string header(reinterpret_cast<const char*>(payload + 4), header_size);
  const JsonValue root = parse_json(header, source + " (checkpoint header)");
  if (root.kind != JsonValue::Kind::kObject) throw Error(source + ": checkpoint header is not an object");
  const Fields top{root, source};
  const int32_t schema = top.integer("feature_schema_version");
  if (schema > kFeatureSchemaVersion || node_feature_count(schema) < 0)
    throw Error(source + ": the checkpoint was trained on feature schema version " + std::to_string(schema) +
                ", this perfsage computes version " + std::to_string(kFeatureSchemaVersion) +
                (schema > kFeatureSchemaVersion ? "; upgrade perfsage" : "; retrain it or use the perfsage version that made it"));

  SageConfig c;
  read_fields(top.sub("config"), c, version);
  c.resolve();
  // An older schema's node columns are the first of this one's (features.h), which the network reads.
  if (c.num_node_features != node_feature_count(schema) ||
      c.num_graph_features != static_cast<int32_t>(graph_feature_names().size()))
    throw Error(source + ": the checkpoint expects " + std::to_string(c.num_node_features) + " node and " +
                std::to_string(c.num_graph_features) + " graph features, feature schema " + std::to_string(schema) +
                " has " + std::to_string(node_feature_count(schema)) + " and " +
                std::to_string(graph_feature_names().size()));

  ModelInfo info;
  TrainOptions& o = info.options;
  read_fields(top.sub("options"), o, version);
  o.validate();

  const JsonValue& targets = top.at("targets", JsonValue::Kind::kArray);
  if (targets.items.size() != static_cast<size_t>(c.num_targets))
    throw Error(source + ": " + std::to_string(targets.items.size()) + " targets for " +
                std::to_string(c.num_targets) + " outputs");
  for (const JsonValue& t : targets.items) {
    if (t.kind != JsonValue::Kind::kObject) throw Error(source + ": a target is not an object");
    const Fields tf{t, source + " target"};
    info.target_names.push_back(tf.text("name"));
    info.target_units.push_back(tf.text("unit"));
  }
  info.provenance_json = json_of(top.at("provenance", JsonValue::Kind::kObject));

  SageNetwork net(c);
  check_layout(top.at("layout", JsonValue::Kind::kArray), net, source + ": the checkpoint");
  std::optional<SageNetwork> companion;
  if (const JsonValue* k = root.find("companion")) {
    if (version < 3) throw Error(source + ": a format-" + std::to_string(version) + " checkpoint with a companion");
    if (k->kind != JsonValue::Kind::kObject) throw Error(source + ": field 'companion' has the wrong type");
    const Fields kf{*k, source + " companion"};
    SageConfig kc;
    read_fields(kf.sub("config"), kc, version);
    kc.resolve();
    if (!fits_as_companion(kc, c))
      throw Error(source + ": the companion network reads other features or predicts other targets than the network");
    companion.emplace(kc);
    check_layout(kf.at("layout", JsonValue::Kind::kArray), *companion, source + ": the companion");
  }

  const size_t floats = network_floats(net) + (companion ? network_floats(*companion) : 0);
  if (payload_size - 4 - header_size != floats * sizeof(float))
    throw Error(source + ": the checkpoint holds " + std::to_string(payload_size - 4 - header_size) +
                " bytes of numbers, its configuration needs " + std::to_string(floats * sizeof(float)));
  const uint8_t* p = payload + 4 + header_size;
  take_network(p, net);
  net.check_normalization();
  if (companion) {
    take_network(p, *companion);
    companion->check_normalization();
  }
  return Checkpoint{std::move(net), std::move(info), std::move(companion)};
}

void save_checkpoint(const std::string& path, const SageNetwork& net, const ModelInfo& info) {
  const std::vector<uint8_t> bytes = checkpoint_bytes(net, info);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path + ": cannot open for writing");
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) throw Error(path + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot rename the temporary file into place");
  }
}

Checkpoint load_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open checkpoint");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return read_checkpoint(bytes.data(), bytes.size(), path);
}

}  // namespace perfsage

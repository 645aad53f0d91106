// The perfsage._core extension: type conversion, GIL handling and docstrings only; the work is in
// cpp/. CMake builds it once per instruction set (_core, _core_x86_64_v3) and names each module with
// PERFSAGE_MODULE_NAME; perfsage/_native.py imports one of them as perfsage._core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <type_traits>
#include <variant>

#include "perfsage/checkpoint.h"
#include "perfsage/error.h"
#include "perfsage/features.h"
#include "perfsage/graph.h"
#include "perfsage/ops.h"
#include "perfsage/sage.h"
#include "perfsage/shared_network.h"
#include "perfsage/spec_graph.h"
#include "perfsage/spec_predict.h"
#include "perfsage/train.h"
#include "perfsage/writer.h"

namespace py = pybind11;
using perfsage::Graph;
using perfsage::SharedNetwork;

namespace {

// Python-side handle; the Graph is immutable and shared with any arrays handed out.
struct PyGraph {
  std::shared_ptr<const Graph> graph;
};

// A read-only array viewing memory owned by `owner` (no copy).
template <typename T>
py::array readonly_view(const T* data, std::vector<py::ssize_t> shape, py::handle owner) {
  std::vector<py::ssize_t> strides(shape.size(), static_cast<py::ssize_t>(sizeof(T)));
  for (size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
  py::array array(py::dtype::of<T>(), shape, strides, data, owner);
  py::detail::array_proxy(array.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return array;
}

// One field of every row, as a new array.
template <typename Row, typename T>
py::array_t<T> column(const std::vector<Row>& rows, T Row::*field) {
  py::array_t<T> out(static_cast<py::ssize_t>(rows.size()));
  T* dst = out.mutable_data();
  for (const Row& row : rows) *dst++ = row.*field;
  return out;
}

template <typename T>
py::array_t<T> copy_array(const std::vector<T>& values) {
  py::array_t<T> out(static_cast<py::ssize_t>(values.size()));
  if (!values.empty()) std::memcpy(out.mutable_data(), values.data(), values.size() * sizeof(T));
  return out;
}

std::string node_op_name(const perfsage::Operator& op) {
  return op.custom_code.empty() ? perfsage::op_name(op.builtin_code) : op.custom_code;
}

const perfsage::Subgraph& subgraph_at(const Graph& g, int64_t s) {
  const auto& subgraphs = g.model().subgraphs;
  if (s < 0 || s >= static_cast<int64_t>(subgraphs.size()))
    throw std::out_of_range("subgraph " + std::to_string(s) + " out of range: the model has " +
                            std::to_string(subgraphs.size()) + " subgraphs");
  return subgraphs[static_cast<size_t>(s)];
}

py::dict options_dict(const perfsage::OperatorOptions& o) {
  py::dict d;
  d["padding"] = o.padding == 0 ? "SAME" : o.padding == 1 ? "VALID" : "";
  d["stride"] = py::make_tuple(o.stride_h, o.stride_w);
  d["dilation"] = py::make_tuple(o.dilation_h, o.dilation_w);
  d["filter"] = py::make_tuple(o.filter_h, o.filter_w);
  d["depth_multiplier"] = o.depth_multiplier;
  d["fused_activation"] = o.fused_activation;
  d["axis"] = o.has_axis ? py::object(py::int_(o.axis)) : py::object(py::none());
  d["keep_dims"] = o.keep_dims;
  d["block_size"] = o.block_size;
  d["adj_x"] = o.adj_x;
  d["adj_y"] = o.adj_y;
  d["called_subgraphs"] = o.called_subgraphs;
  return d;
}

// Bytes to parse: a pointer into an immutable `bytes`, or a private copy of any other buffer
// (a bytearray or array could change under a released GIL).
struct ByteSource {
  py::object keep_alive;
  std::vector<uint8_t> copy;
  const uint8_t* data = nullptr;
  size_t size = 0;
};

ByteSource byte_source(const py::handle& obj, const char* arg) {
  ByteSource src;
  if (PyBytes_Check(obj.ptr())) {
    src.keep_alive = py::reinterpret_borrow<py::object>(obj);
    src.data = reinterpret_cast<const uint8_t*>(PyBytes_AS_STRING(obj.ptr()));
    src.size = static_cast<size_t>(PyBytes_GET_SIZE(obj.ptr()));
    return src;
  }
  if (!PyObject_CheckBuffer(obj.ptr()))
    throw py::type_error(std::string(arg) + ": expected bytes-like data, got " +
                         std::string(py::str(obj.get_type().attr("__name__"))));
  py::buffer_info info = py::reinterpret_borrow<py::buffer>(obj).request();
  if (info.itemsize != 1 || info.ndim != 1 || (info.ndim == 1 && info.strides[0] != 1))
    throw py::value_error(std::string(arg) + ": expected contiguous 1-D bytes, got itemsize " +
                          std::to_string(info.itemsize) + " and " + std::to_string(info.ndim) +
                          " dimensions");
  const auto* p = static_cast<const uint8_t*>(info.ptr);
  src.copy.assign(p, p + info.size);
  src.data = src.copy.data();
  src.size = src.copy.size();
  return src;
}

// The network's current weights and normalisation. Taken with the GIL released: this thread never
// waits for a perfsage lock while holding the GIL (the core never takes the GIL at all).
std::shared_ptr<const perfsage::SageNetwork> snapshot_of(const SharedNetwork& n) {
  py::gil_scoped_release release;
  return n.snapshot();
}

// Checks that `obj` is a C-contiguous float32 numpy array of `shape` (-1: any size) and returns
// it; the error names `what` and what was received.
py::array_t<float> float_array(const py::handle& obj, const std::string& what,
                               const std::vector<py::ssize_t>& shape) {
  auto expected = [&] {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i)
      s += (i ? ", " : "") + (shape[i] < 0 ? std::string("n") : std::to_string(shape[i]));
    return s + (shape.size() == 1 ? ",)" : ")");
  };
  if (!py::isinstance<py::array>(obj))
    throw py::value_error(what + ": expected a float32 numpy array of shape " + expected() + ", got " +
                          std::string(py::str(obj.get_type().attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  std::string got = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) got += (i ? ", " : "") + std::to_string(a.shape(i));
  got += a.ndim() == 1 ? ",)" : ")";
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || a.shape(i) == shape[i];
  if (!ok) throw py::value_error(what + ": expected shape " + expected() + ", got " + got);
  if (!a.dtype().is(py::dtype::of<float>()))
    throw py::value_error(what + ": expected dtype float32, got " + std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(what + ": expected a C-contiguous array");
  return py::reinterpret_borrow<py::array_t<float>>(a);
}

// Graph handles taken from a Python list, kept alive while the GIL is released.
struct GraphList {
  std::vector<std::shared_ptr<const Graph>> keep;
  std::vector<perfsage::GraphInput> inputs;
};

GraphList graph_list(const py::sequence& graphs, const char* what) {
  GraphList out;
  out.keep.reserve(graphs.size());
  for (size_t i = 0; i < graphs.size(); ++i) {
    py::handle g = graphs[i];
    if (!py::isinstance<PyGraph>(g))
      throw py::type_error(std::string(what) + "[" + std::to_string(i) + "]: expected perfsage.Graph, got " +
                           std::string(py::str(g.get_type().attr("__name__"))));
    out.keep.push_back(g.cast<const PyGraph&>().graph);
    out.inputs.push_back(perfsage::graph_input(*out.keep.back()));
  }
  return out;
}

// Where a Python value that JSON cannot hold sits in a spec ("['layers'][3]['kernel']"): built
// while the error travels up, so a valid spec builds no strings.
struct NotJson {
  std::string path;
  std::string what;
};

constexpr int kMaxJsonDepth = 64;  // as the core's JSON parser

// A spec made of Python dicts, lists, tuples, strings, numbers, booleans and None (what json.dumps
// writes) as the JSON value the core would parse from json.dumps(spec): specs reach the core
// without JSON text. Needs the GIL.
perfsage::JsonValue json_value(const py::handle& obj, int depth = 0) {
  using Kind = perfsage::JsonValue::Kind;
  perfsage::JsonValue v;
  PyObject* o = obj.ptr();
  if (depth > kMaxJsonDepth) throw NotJson{"", "nested deeper than " + std::to_string(kMaxJsonDepth)};
  if (o == Py_None) return v;
  if (PyBool_Check(o)) {
    v.kind = Kind::kBool;
    v.boolean = o == Py_True;
  } else if (PyLong_Check(o) || PyFloat_Check(o)) {
    v.kind = Kind::kNumber;
    v.number = PyFloat_Check(o) ? PyFloat_AS_DOUBLE(o) : PyLong_AsDouble(o);
    if (PyErr_Occurred()) {
      PyErr_Clear();
      throw NotJson{"", "is an int too large for a float"};
    }
    if (!std::isfinite(v.number)) throw NotJson{"", "is NaN or infinite, which JSON cannot hold"};
  } else if (PyUnicode_Check(o)) {
    Py_ssize_t size = 0;
    const char* text = PyUnicode_AsUTF8AndSize(o, &size);
    if (!text) throw py::error_already_set();
    v.kind = Kind::kString;
    v.text.assign(text, static_cast<size_t>(size));
  } else if (PyList_Check(o) || PyTuple_Check(o)) {
    v.kind = Kind::kArray;
    const bool list = PyList_Check(o);
    const Py_ssize_t size = list ? PyList_GET_SIZE(o) : PyTuple_GET_SIZE(o);
    v.items.reserve(static_cast<size_t>(size));
    for (Py_ssize_t i = 0; i < size; ++i) try {
        v.items.push_back(json_value(list ? PyList_GET_ITEM(o, i) : PyTuple_GET_ITEM(o, i), depth + 1));
      } catch (NotJson& e) {
        e.path = "[" + std::to_string(i) + "]" + e.path;
        throw;
      }
  } else if (PyDict_Check(o)) {
    v.kind = Kind::kObject;
    v.members.reserve(static_cast<size_t>(PyDict_Size(o)));
    PyObject* key = nullptr;
    PyObject* value = nullptr;
    for (Py_ssize_t pos = 0; PyDict_Next(o, &pos, &key, &value);) {
      if (!PyUnicode_Check(key))
        throw NotJson{"", "has the key " + std::string(py::repr(key)) + ", not a string"};
      Py_ssize_t size = 0;
      const char* name = PyUnicode_AsUTF8AndSize(key, &size);
      if (!name) throw py::error_already_set();
      auto& member = v.members.emplace_back(std::string(name, static_cast<size_t>(size)), perfsage::JsonValue{});
      try {
        member.second = json_value(value, depth + 1);
      } catch (NotJson& e) {
        e.path = "['" + member.first + "']" + e.path;
        throw;
      }
    }
  } else {
    throw NotJson{"", "is a " + std::string(py::str(obj.get_type().attr("__name__"))) +
                          " (a spec holds dicts, lists, strings, numbers, booleans and None)"};
  }
  return v;
}

// A spec for the core: JSON text (str), or a dict converted with json_value; TypeError naming
// `where` and the place in the spec otherwise.
std::variant<std::string, perfsage::JsonValue> spec_of(const py::handle& spec, const std::string& where) {
  if (py::isinstance<py::str>(spec)) return spec.cast<std::string>();
  if (!PyDict_Check(spec.ptr()))
    throw py::type_error(where + ": expected a spec (a dict or its JSON text), got " +
                         std::string(py::str(spec.get_type().attr("__name__"))));
  try {
    return json_value(spec);
  } catch (const NotJson& e) {
    throw py::type_error(where + ": spec" + e.path + " " + e.what);  // as "kws-3: spec['layers'][2] is a set"
  }
}

// Runs run(feed) on a batch's specs (dicts or JSON text), one seed and one source each: the feed
// converts them one by one on this thread, holding the GIL, while the core's workers already build
// the ones converted, and releases the GIL after the last (it is held again when this returns).
template <typename Run>
auto with_spec_feed(const py::list& specs, const std::vector<uint64_t>& seeds, const std::vector<std::string>& sources,
                    const std::string& dtype, const std::string& what, const Run& run) {
  if (seeds.size() != specs.size() || sources.size() != specs.size())
    throw py::value_error(what + ": " + std::to_string(specs.size()) + " specs, " + std::to_string(seeds.size()) +
                          " seeds and " + std::to_string(sources.size()) + " sources; expected one of each per spec");
  const perfsage::WeightType type = perfsage::weight_type(dtype);
  std::optional<py::gil_scoped_release> released;
  const perfsage::SpecFeed feed{
      specs.size(),
      [&](size_t i) { return perfsage::SpecItem{spec_of(specs[i], sources[i]), seeds[i], type, sources[i]}; },
      [&] { released.emplace(); }};
  auto out = run(feed);
  released.reset();
  return out;
}

// A batch's results as Python: (Graph or None, error message) per item.
py::list result_list(const std::vector<perfsage::LoadResult>& results) {
  py::list out;
  for (const auto& r : results)
    out.append(py::make_tuple(r.graph ? py::cast(PyGraph{r.graph}) : py::object(py::none()), r.error));
  return out;
}

py::array_t<float> matrix_of(const std::vector<float>& values, py::ssize_t rows, py::ssize_t cols) {
  py::array_t<float> out({rows, cols});
  if (!values.empty()) std::memcpy(out.mutable_data(), values.data(), values.size() * sizeof(float));
  return out;
}

template <typename T>
py::array_t<T> param_array(const T* data, const perfsage::ParamInfo& p) {
  py::array_t<T> out = p.is_vector ? py::array_t<T>(p.cols) : py::array_t<T>({p.rows, p.cols});
  std::memcpy(out.mutable_data(), data + p.offset, static_cast<size_t>(p.size()) * sizeof(T));
  return out;
}

// A field's value for Python: enums by name.
template <typename T>
py::object field_value(const T& value) {
  if constexpr (std::is_enum_v<T>)
    return py::str(perfsage::to_string(value));
  else
    return py::cast(value);
}

// A configuration struct as a dict, driven by its field table (perfsage/fields.h); with
// `hyperparameters_only`, the fields a user sets through Predictor(**hyperparameters).
template <typename Struct>
py::dict fields_dict(const Struct& s, bool hyperparameters_only) {
  py::dict d;
  Struct::for_each_field([&](auto field) {
    if (!hyperparameters_only || field.role == perfsage::FieldRole::kHyperparameter)
      d[field.name] = field_value(s.*field.member);
  });
  return d;
}

// Attributes for every field of a configuration struct, with its doc; enums read and write names.
template <typename Struct>
void def_fields(py::class_<Struct>& cls) {
  Struct::for_each_field([&](auto field) {
    using T = typename decltype(field)::Type;
    if constexpr (std::is_enum_v<T>) {
      cls.def_property(
          field.name, [member = field.member](const Struct& s) { return std::string(perfsage::to_string(s.*member)); },
          [member = field.member, name = field.name](Struct& s, const std::string& v) {
            s.*member = perfsage::parse_enum(v, name, T{});
          },
          field.doc);
    } else {
      cls.def_readwrite(field.name, field.member, field.doc);
    }
  });
}

py::dict stats_dict(const perfsage::EpochStats& s) {
  py::dict d;
  d["epoch"] = s.epoch;
  d["train_loss"] = s.train_loss;
  d["val_loss"] = s.val_loss;
  d["val_mape"] = s.val_mape;
  d["lr"] = s.lr;
  d["grad_norm"] = s.grad_norm;
  d["seconds"] = s.seconds;
  d["best"] = s.best;
  return d;
}

perfsage::EpochStats stats_from_dict(const py::dict& d) {
  perfsage::EpochStats s;
  s.epoch = d["epoch"].cast<int32_t>();
  s.train_loss = d["train_loss"].cast<double>();
  s.val_loss = d["val_loss"].cast<double>();
  s.val_mape = d["val_mape"].cast<std::vector<double>>();
  s.lr = d["lr"].cast<double>();
  s.grad_norm = d["grad_norm"].cast<double>();
  s.seconds = d["seconds"].cast<double>();
  s.best = d["best"].cast<bool>();
  return s;
}

py::array_t<float> flat_array(const std::vector<float>& values) {
  py::array_t<float> a(static_cast<py::ssize_t>(values.size()));
  if (!values.empty()) std::memcpy(a.mutable_data(), values.data(), values.size() * sizeof(float));
  return a;
}

std::vector<float> flat_vector(const py::handle& obj, const std::string& what) {
  const auto a = float_array(obj, what, {-1});
  return std::vector<float>(a.data(), a.data() + a.shape(0));
}

perfsage::TrainState train_state_from_dict(const py::dict& d) {
  perfsage::TrainState t;
  for (const char* key : {"epochs_done", "step", "best_loss", "best_epoch", "stopped_early", "history", "m",
                          "v", "best_params"})
    if (!d.contains(key)) throw py::value_error(std::string("training state: '") + key + "' is missing");
  t.epochs_done = d["epochs_done"].cast<int32_t>();
  t.step = d["step"].cast<int64_t>();
  t.best_loss = d["best_loss"].cast<double>();
  t.result.best_epoch = d["best_epoch"].cast<int32_t>();
  t.result.stopped_early = d["stopped_early"].cast<bool>();
  for (const auto& s : d["history"].cast<py::list>()) t.result.history.push_back(stats_from_dict(s.cast<py::dict>()));
  t.m = flat_vector(d["m"], "training state 'm'");
  t.v = flat_vector(d["v"], "training state 'v'");
  t.best_params = flat_vector(d["best_params"], "training state 'best_params'");
  return t;
}

std::vector<float>* normalization_field(perfsage::Normalization& n, const std::string& name) {
  if (name == "node_mean") return &n.node_mean;
  if (name == "node_std") return &n.node_std;
  if (name == "graph_mean") return &n.graph_mean;
  if (name == "graph_std") return &n.graph_std;
  if (name == "target_mean") return &n.target_mean;
  if (name == "target_std") return &n.target_std;
  return nullptr;
}

const char* const kNormalizationFields[] = {"node_mean", "node_std", "graph_mean", "graph_std",
                                            "target_mean", "target_std"};

}  // namespace

#ifndef PERFSAGE_MODULE_NAME
#error "PERFSAGE_MODULE_NAME must name the extension module (CMakeLists.txt defines it)"
#endif

PYBIND11_MODULE(PERFSAGE_MODULE_NAME, m) {
  // Every build calls itself perfsage._core before it defines anything, so that the __module__ of
  // its classes and functions, and with it pickles, reprs and the generated stub, is the same
  // whichever build _native.py loaded (a pickle naming _core_x86_64_v3 would not load on a CPU
  // without it).
  m.attr("__name__") = "perfsage._core";
  m.doc() = "perfsage C++ core: TFLite reader, graph IR and features.";
  py::register_exception<perfsage::Error>(m, "PerfSageError", PyExc_ValueError);
  m.attr("FEATURE_SCHEMA_VERSION") = perfsage::kFeatureSchemaVersion;
  m.attr("CUSTOM_OP_TYPE") = perfsage::kCustomOpCode;

  m.def("node_feature_names", &perfsage::node_feature_names,
        "Names of the node feature columns, in order.");
  m.def("graph_feature_names", &perfsage::graph_feature_names,
        "Names of the graph feature columns, in order.");
  m.def("op_vocabulary", &perfsage::op_names,
        "Operator names indexed by op type (the TFLite builtin code); CUSTOM is the custom-op slot.");
  m.def(
      "op_families",
      [] {
        std::vector<int32_t> out;
        for (int32_t code = 0; code < perfsage::op_vocabulary_size(); ++code) out.push_back(perfsage::op_family(code));
        return out;
      },
      "The operator family of each op type (indexed like op_vocabulary); see op_family_names.");
  m.def(
      "op_family_names",
      [] {
        std::vector<std::string> out;
        for (int32_t f = 0; f < perfsage::op_family_count(); ++f) out.push_back(perfsage::op_family_name(f));
        return out;
      },
      "Names of the operator families the network's family embedding has one row for.");

  py::class_<PyGraph>(m, "Graph",
                      "An operator graph read from a TFLite model, with its features (immutable).")
      .def_property_readonly("source", [](const PyGraph& g) { return g.graph->source(); },
                             "File path, or the label given for bytes.")
      .def_property_readonly("num_nodes", [](const PyGraph& g) { return g.graph->num_nodes(); })
      .def_property_readonly("num_edges", [](const PyGraph& g) { return g.graph->num_edges(); })
      .def_property_readonly(
          "node_features",
          [](py::object self) {
            const Graph& g = *self.cast<const PyGraph&>().graph;
            const auto cols = static_cast<py::ssize_t>(perfsage::node_feature_names().size());
            return readonly_view(g.node_features().data(), {g.num_nodes(), cols}, self);
          },
          "float32 [num_nodes, F], columns named by node_feature_names(). Read-only view.")
      .def_property_readonly(
          "edge_index",
          [](py::object self) {
            const Graph& g = *self.cast<const PyGraph&>().graph;
            return readonly_view(g.edge_index().data(), {2, g.num_edges()}, self);
          },
          "int64 [2, num_edges]: row 0 sources, row 1 destinations. Read-only view.")
      .def_property_readonly(
          "graph_features",
          [](py::object self) {
            const Graph& g = *self.cast<const PyGraph&>().graph;
            return readonly_view(g.graph_features().data(),
                                 {static_cast<py::ssize_t>(g.graph_features().size())}, self);
          },
          "float32 [G], named by graph_feature_names(). Read-only view.")
      .def_property_readonly(
          "op_types",
          [](py::object self) {
            const Graph& g = *self.cast<const PyGraph&>().graph;
            return readonly_view(g.op_types().data(), {g.num_nodes()}, self);
          },
          "int32 [num_nodes]: op-type index (TFLite builtin code) per node.")
      .def_property_readonly(
          "op_names",
          [](const PyGraph& g) {
            std::vector<std::string> names;
            names.reserve(g.graph->nodes().size());
            for (int64_t v = 0; v < g.graph->num_nodes(); ++v) names.push_back(node_op_name(g.graph->op(v)));
            return names;
          },
          "Operator name per node: the builtin name, or the custom code for custom operators.")
      .def_property_readonly(
          "node_costs",
          [](const PyGraph& g) {
            using perfsage::NodeCost;
            const auto& costs = g.graph->node_costs();
            py::dict d;
            d["macs"] = column(costs, &NodeCost::macs);
            d["param_count"] = column(costs, &NodeCost::param_count);
            d["param_bytes"] = column(costs, &NodeCost::param_bytes);
            d["input_activation_bytes"] = column(costs, &NodeCost::input_activation_bytes);
            d["output_activation_bytes"] = column(costs, &NodeCost::output_activation_bytes);
            return d;
          },
          "Exact per-node costs as int64 arrays (the float features round large counts).")
      .def_property_readonly(
          "totals",
          [](const PyGraph& g) {
            const auto& t = g.graph->totals();
            py::dict d;
            d["macs"] = t.macs;
            d["param_count"] = t.param_count;
            d["param_bytes"] = t.param_bytes;
            d["activation_bytes"] = t.activation_bytes;
            d["peak_activation_bytes"] = t.peak_activation_bytes;
            d["input_bytes"] = t.input_bytes;
            d["output_bytes"] = t.output_bytes;
            d["longest_path"] = t.longest_path;
            return d;
          },
          "Exact graph totals as Python ints.")
      .def_property_readonly(
          "nodes",
          [](const PyGraph& g) {
            using perfsage::Node;
            const auto& nodes = g.graph->nodes();
            py::dict d;
            d["subgraph"] = column(nodes, &Node::subgraph);
            d["op_index"] = column(nodes, &Node::op_index);
            d["call_depth"] = column(nodes, &Node::call_depth);
            d["caller"] = column(nodes, &Node::caller);
            return d;
          },
          "Where each node comes from: subgraph, operator index, call depth, calling node (-1).")
      .def_property_readonly("num_subgraphs",
                             [](const PyGraph& g) { return g.graph->model().subgraphs.size(); })
      .def(
          "subgraph",
          [](const PyGraph& g, int64_t s) {
            const auto& sg = subgraph_at(*g.graph, s);
            py::dict d;
            d["name"] = sg.name;
            d["inputs"] = sg.inputs;
            d["outputs"] = sg.outputs;
            d["num_tensors"] = sg.tensors.size();
            d["num_operators"] = sg.operators.size();
            return d;
          },
          py::arg("index") = 0, "Name, input/output tensor indices and sizes of one subgraph.")
      .def(
          "tensors",
          [](const PyGraph& g, int64_t s) {
            py::list out;
            for (const auto& t : subgraph_at(*g.graph, s).tensors) {
              py::dict d;
              d["name"] = t.name;
              d["shape"] = py::tuple(py::cast(t.shape.to_vector()));
              d["shape_signature"] = py::tuple(py::cast(t.shape_signature));
              d["dtype"] = perfsage::dtype_name(t.dtype);
              d["buffer"] = t.buffer;
              d["data_bytes"] = t.data_bytes;
              d["num_bytes"] = t.num_bytes();
              d["is_constant"] = t.is_constant;
              d["is_variable"] = t.is_variable;
              d["is_sparse"] = t.is_sparse;
              py::dict q;
              q["scale"] = copy_array(t.quantization.scale.to_vector());
              q["zero_point"] = copy_array(t.quantization.zero_point.to_vector());
              q["quantized_dimension"] = t.quantization.quantized_dimension;
              d["quantization"] = q;
              out.append(d);
            }
            return out;
          },
          py::arg("subgraph") = 0, "Every tensor of a subgraph as a dict (cold path; for inspection).")
      .def(
          "operators",
          [](const PyGraph& g, int64_t s) {
            py::list out;
            for (const auto& op : subgraph_at(*g.graph, s).operators) {
              py::dict d;
              d["name"] = node_op_name(op);
              d["builtin_code"] = op.builtin_code;
              d["custom_code"] = op.custom_code;
              d["version"] = op.version;
              d["inputs"] = op.inputs.to_vector();
              d["outputs"] = op.outputs.to_vector();
              d["intermediates"] = op.intermediates;
              d["options"] = options_dict(op.options);
              out.append(d);
            }
            return out;
          },
          py::arg("subgraph") = 0, "Every operator of a subgraph as a dict (cold path).")
      .def("__repr__", [](const PyGraph& g) {
        return "<perfsage.Graph '" + g.graph->source() + "': " + std::to_string(g.graph->num_nodes()) +
               " nodes, " + std::to_string(g.graph->num_edges()) + " edges>";
      });

  m.def(
      "load_file",
      [](const std::string& path) {
        std::shared_ptr<const Graph> graph;
        {
          py::gil_scoped_release release;
          graph = perfsage::load_graph_file(path);
        }
        return PyGraph{graph};
      },
      py::arg("path"), "Reads a .tflite file into a Graph; raises PerfSageError on bad input.");

  m.def(
      "load_bytes",
      [](const py::object& data, const std::string& source) {
        ByteSource src = byte_source(data, "data");
        std::shared_ptr<const Graph> graph;
        {
          py::gil_scoped_release release;
          graph = perfsage::load_graph(src.data, src.size, source);
        }
        return PyGraph{graph};
      },
      py::arg("data"), py::arg("source") = "<bytes>",
      "Reads TFLite bytes into a Graph; `source` names them in error messages.");

  m.def(
      "load_many",
      [](const py::list& items, int threads) {
        std::vector<perfsage::LoadItem> work(items.size());
        std::vector<ByteSource> sources(items.size());
        for (size_t i = 0; i < items.size(); ++i) {
          py::handle item = items[i];
          if (py::isinstance<py::str>(item)) {
            work[i].path = item.cast<std::string>();
          } else {
            sources[i] = byte_source(item, ("items[" + std::to_string(i) + "]").c_str());
            work[i].data = sources[i].data;
            work[i].size = sources[i].size;
            work[i].label = "items[" + std::to_string(i) + "]";
          }
        }
        std::vector<perfsage::LoadResult> results;
        {
          py::gil_scoped_release release;
          results = perfsage::load_many(work, threads);
        }
        return result_list(results);
      },
      py::arg("items"), py::arg("threads") = 0,
      "Loads paths (str) and bytes-like items on `threads` threads (0: all cores) with the GIL\n"
      "released; returns a list of (Graph or None, error message) in item order.");

  m.def(
      "build_model",
      [](const std::string& spec_json, uint64_t seed, const std::string& dtype) {
        const perfsage::WeightType type = perfsage::weight_type(dtype);
        std::vector<uint8_t> bytes;
        {
          py::gil_scoped_release release;
          bytes = perfsage::build_model_json(spec_json, seed, type);
        }
        return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      },
      py::arg("spec_json"), py::arg("seed") = 0, py::arg("dtype") = "int8",
      "Builds TFLite bytes from a JSON architecture spec (see cpp/include/perfsage/spec.h).");

  m.def(
      "spec_graph",
      [](const py::object& spec, uint64_t seed, const std::string& dtype, const std::string& source) {
        const perfsage::WeightType type = perfsage::weight_type(dtype);
        perfsage::SpecItem item{spec_of(spec, source), seed, type, source};
        std::shared_ptr<const Graph> graph;
        {
          py::gil_scoped_release release;
          graph = perfsage::spec_graph(std::move(item));
        }
        return PyGraph{graph};
      },
      py::arg("spec"), py::arg("seed") = 0, py::arg("dtype") = "int8", py::arg("source") = "<spec>",
      "The Graph of load_bytes(build_model(json.dumps(spec), seed, dtype), source), built without\n"
      "weights or TFLite bytes (see cpp/include/perfsage/spec_graph.h). `spec` is a dict or JSON text.");

  m.def(
      "spec_graphs",
      [](const py::list& specs, const std::vector<uint64_t>& seeds, const std::vector<std::string>& sources,
         const std::string& dtype, int threads) {
        return result_list(with_spec_feed(specs, seeds, sources, dtype, "spec_graphs",
                                          [&](const perfsage::SpecFeed& feed) { return perfsage::spec_graphs(feed, threads); }));
      },
      py::arg("specs"), py::arg("seeds"), py::arg("sources"), py::arg("dtype") = "int8", py::arg("threads") = 0,
      "spec_graph for every spec (a dict or JSON text) on `threads` threads (0: all cores) with the GIL\n"
      "released; returns a list of (Graph or None, error message) in spec order.");

  m.def(
      "layer_ops", [](const std::string& dtype) { return perfsage::layer_ops(perfsage::weight_type(dtype)); },
      py::arg("dtype"), "The spec ops build_model writes in models of `dtype` ('int8', 'float32' or 'int16x8').");

  m.def(
      "strip_weights",
      [](const py::object& data, const std::string& source) {
        ByteSource src = byte_source(data, "data");
        std::vector<uint8_t> bytes;
        {
          py::gil_scoped_release release;
          bytes = perfsage::strip_weights(src.data, src.size, source);
        }
        return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      },
      py::arg("data"), py::arg("source") = "<bytes>",
      "Copy of a TFLite model with constant buffers emptied and every shape kept.");

  py::class_<perfsage::TrainState>(m, "TrainState",
                                   "Where a training run stands after its last whole epoch (Network.train's `state`):\n"
                                   "with the weights of that moment, enough to go on from there bit for bit.")
      .def(py::init([](const py::object& values) {
             return values.is_none() ? perfsage::TrainState{} : train_state_from_dict(values.cast<py::dict>());
           }),
           py::arg("values") = py::none(),
           "A run's start (no epochs done), or the state to_dict gave, checked against the network when\n"
           "training starts.")
      .def_readonly("epochs_done", &perfsage::TrainState::epochs_done)
      .def("to_dict", [](const perfsage::TrainState& t) {
        py::dict d;
        d["epochs_done"] = t.epochs_done;
        d["step"] = t.step;
        d["best_loss"] = t.best_loss;
        d["best_epoch"] = t.result.best_epoch;
        d["stopped_early"] = t.result.stopped_early;
        py::list history;
        for (const auto& s : t.result.history) history.append(stats_dict(s));
        d["history"] = history;
        d["m"] = flat_array(t.m);
        d["v"] = flat_array(t.v);
        d["best_params"] = flat_array(t.best_params);
        return d;
      }, "Its fields: counters, history (a dict per epoch) and float32 arrays m, v, best_params.");

  py::class_<perfsage::TrainOptions> train_options(m, "TrainOptions", "Optimiser and training-loop settings.");
  train_options.def(py::init<>())
      .def("validate", &perfsage::TrainOptions::validate, "Raises PerfSageError naming a bad field.");
  def_fields(train_options);

  py::class_<perfsage::SageConfig> sage_config(m, "SageConfig",
                                               "The network's shape (see cpp/include/perfsage/sage_config.h).");
  sage_config.def(py::init<>());
  def_fields(sage_config);

  m.def(
      "network_defaults", [] { return fields_dict(perfsage::SageConfig{}, true); },
      "The network hyperparameters a user may set, with their defaults (SageConfig's table).");
  m.def(
      "training_defaults", [] { return fields_dict(perfsage::TrainOptions{}, true); },
      "The training hyperparameters a user may set, with their defaults (TrainOptions' table).");

  py::class_<perfsage::GraphSet>(m, "GraphSet",
                                 "Graphs held compactly for training (features, op types, edges).")
      .def(py::init<>())
      .def("__len__", &perfsage::GraphSet::size)
      .def(
          "extend",
          [](perfsage::GraphSet& set, const py::sequence& graphs) {
            GraphList list = graph_list(graphs, "graphs");
            py::gil_scoped_release release;
            std::vector<const Graph*> graphs_to_add;
            for (const auto& g : list.keep) graphs_to_add.push_back(g.get());
            set.extend(graphs_to_add);
          },
          py::arg("graphs"), "Appends graphs (copies their features; the Graphs can be freed).")
      .def("num_nodes", &perfsage::GraphSet::num_nodes, py::arg("index"))
      .def(
          "set_node_labels",
          [](perfsage::GraphSet& set, int64_t index, const py::handle& labels) {
            if (index < 0 || index >= set.size())
              throw py::index_error("set_node_labels: graph " + std::to_string(index) + " of " +
                                    std::to_string(set.size()));
            const auto a = float_array(labels, "labels", {static_cast<py::ssize_t>(set.num_nodes(index)), -1});
            py::gil_scoped_release release;
            set.set_node_labels(index, a.data(), static_cast<int32_t>(a.shape(1)));
          },
          py::arg("index"), py::arg("labels"),
          "Per-operator labels of graph `index`: float32 [num_nodes, targets], NaN = missing.")
      .def_property_readonly("node_label_targets", &perfsage::GraphSet::node_label_targets)
      .def_property_readonly("memory_bytes", &perfsage::GraphSet::memory_bytes);

  py::class_<SharedNetwork, std::shared_ptr<SharedNetwork>>(
      m, "Network",
      "The GraphSAGE network (see cpp/include/perfsage/sage.h). Safe to use from several threads, also\n"
      "while one trains it: readers see the weights of the last finished batch (see\n"
      "cpp/include/perfsage/shared_network.h); writing weights while it trains raises PerfSageError.")
      .def(py::init([](const perfsage::SageConfig& config) { return std::make_shared<SharedNetwork>(config); }),
           py::arg("config"))
      .def_property_readonly("config", [](const SharedNetwork& n) { return fields_dict(n.config(), false); })
      .def_property_readonly("layout", [](const SharedNetwork& n) {
        py::list out;
        for (const auto& p : n.layout().params())
          out.append(py::make_tuple(p.name, p.is_vector ? py::tuple(py::make_tuple(p.cols))
                                                     : py::tuple(py::make_tuple(p.rows, p.cols))));
        return out;
      }, "[(name, shape)] in storage order.")
      .def_property_readonly("training", [](const SharedNetwork& n) {
        py::gil_scoped_release release;
        return n.training();
      }, "Whether train() is running.")
      .def("init_parameters", [](SharedNetwork& n, uint64_t seed) {
        py::gil_scoped_release release;
        n.init_parameters(seed);
      }, py::arg("seed"))
      .def("get_parameters", [](const SharedNetwork& n) {
        const auto net = snapshot_of(n);
        py::dict d;
        for (const auto& p : net->layout().params()) d[py::str(p.name)] = param_array(net->parameters().data(), p);
        return d;
      }, "Copies of every parameter, by name.")
      .def("set_parameters", [](SharedNetwork& n, const py::dict& values) {
        const auto& layout = n.layout();
        for (auto item : values)
          if (!layout.find(item.first.cast<std::string>()))
            throw py::value_error("parameters: no parameter named '" + item.first.cast<std::string>() + "'");
        std::vector<float> next(static_cast<size_t>(layout.size()));
        for (const auto& p : layout.params()) {
          if (!values.contains(p.name)) throw py::value_error("parameters: '" + p.name + "' is missing");
          const auto a = float_array(values[py::str(p.name)], "parameters['" + p.name + "']",
                                     p.is_vector ? std::vector<py::ssize_t>{p.cols} : std::vector<py::ssize_t>{p.rows, p.cols});
          std::memcpy(next.data() + p.offset, a.data(), static_cast<size_t>(p.size()) * sizeof(float));
        }
        py::gil_scoped_release release;
        n.set_parameters(std::move(next));
      }, py::arg("values"), "Replaces every parameter (float32 arrays of the layout's shapes).")
      .def("get_normalization", [](const SharedNetwork& n) {
        const auto net = snapshot_of(n);
        py::dict d;
        perfsage::Normalization norm = net->normalization();
        for (const char* name : kNormalizationFields) d[name] = copy_array(*normalization_field(norm, name));
        return d;
      })
      .def("set_normalization", [](SharedNetwork& n, const py::dict& values) {
        const auto& c = n.config();
        perfsage::Normalization next;
        const std::vector<py::ssize_t> sizes = {c.num_node_features, c.num_node_features, c.num_graph_features,
                                                c.num_graph_features, c.num_targets, c.num_targets};
        for (size_t i = 0; i < 6; ++i) {
          const std::string name = kNormalizationFields[i];
          if (!values.contains(name)) throw py::value_error("normalization: '" + name + "' is missing");
          const auto a = float_array(values[py::str(name)], "normalization['" + name + "']", {sizes[i]});
          std::vector<float>* field = normalization_field(next, name);
          field->assign(a.data(), a.data() + a.size());
        }
        py::gil_scoped_release release;
        n.set_normalization(std::move(next));
      }, py::arg("values"))
      .def("fit_normalization", [](SharedNetwork& n, const perfsage::GraphSet& set, const py::handle& labels) {
        const auto y = float_array(labels, "labels", {static_cast<py::ssize_t>(set.size()), n.config().num_targets});
        py::gil_scoped_release release;
        std::vector<perfsage::GraphInput> inputs;
        for (int64_t i = 0; i < set.size(); ++i) inputs.push_back(set.at(i));
        n.fit_normalization(inputs, y.data());
      }, py::arg("graphs"), py::arg("labels"),
         "Fits feature and target statistics on a GraphSet and labels [n, targets] (NaN = missing).")
      .def("predict", [](const SharedNetwork& n, const py::sequence& graphs, int threads) {
        GraphList list = graph_list(graphs, "graphs");
        const py::ssize_t T = n.config().num_targets;
        py::array_t<float> out({static_cast<py::ssize_t>(list.inputs.size()), T});
        float* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          n.snapshot()->predict(list.inputs, threads, dst);
        }
        return out;
      }, py::arg("graphs"), py::arg("threads") = 0,
         "Predictions [n, targets] (float32) for a list of Graphs, GIL released.")
      .def("predict_specs", [](const SharedNetwork& n, const py::list& specs, const std::vector<uint64_t>& seeds,
                               const std::vector<std::string>& sources, const std::string& dtype, int threads) {
        const py::ssize_t T = n.config().num_targets;
        py::array_t<float> out({static_cast<py::ssize_t>(specs.size()), T});
        float* dst = out.mutable_data();
        const std::shared_ptr<const perfsage::SageNetwork> network = n.snapshot();
        std::vector<std::string> errors = with_spec_feed(
            specs, seeds, sources, dtype, "predict_specs",
            [&](const perfsage::SpecFeed& feed) { return perfsage::predict_specs(*network, feed, threads, dst); });
        return py::make_tuple(out, errors);
      }, py::arg("specs"), py::arg("seeds"), py::arg("sources"), py::arg("dtype") = "int8", py::arg("threads") = 0,
         "Predictions [n, targets] straight from specs (as spec_graphs takes them), each worker building,\n"
         "predicting and freeing its specs' graphs with the GIL released; returns (predictions, errors):\n"
         "an empty string per predicted spec, else its error, its row NaN.")
      .def("explain", [](const SharedNetwork& n, const PyGraph& graph) {
        const py::ssize_t T = n.config().num_targets;
        const std::shared_ptr<const Graph> keep = graph.graph;
        const perfsage::GraphInput input = perfsage::graph_input(*keep);
        py::array_t<float> prediction(T);
        py::array_t<float> shares({static_cast<py::ssize_t>(input.num_nodes), T});
        float* p = prediction.mutable_data();
        float* s = shares.mutable_data();
        {
          py::gil_scoped_release release;
          n.snapshot()->explain(input, p, s);
        }
        return py::make_tuple(prediction, shares);
      }, py::arg("graph"),
         "(prediction [targets], shares [num_nodes, targets]): each operator's share of each target, "
         "from the log-sum-exp readout; a target's shares sum to 1.")
      .def("operator_costs", [](const SharedNetwork& n, const PyGraph& graph) {
        const py::ssize_t T = n.config().num_targets;
        const std::shared_ptr<const Graph> keep = graph.graph;
        const perfsage::GraphInput input = perfsage::graph_input(*keep);
        py::array_t<float> prediction(T), constant(T);
        py::array_t<float> costs({static_cast<py::ssize_t>(input.num_nodes), T});
        float* p = prediction.mutable_data();
        float* c = costs.mutable_data();
        float* k = constant.mutable_data();
        {
          py::gil_scoped_release release;
          n.snapshot()->operator_costs(input, p, c, k);
        }
        return py::make_tuple(prediction, costs, constant);
      }, py::arg("graph"),
         "Additive readout only: (prediction [targets], each operator's cost [num_nodes, targets], the "
         "graph's constant [targets]); a sum target's prediction is the costs' sum plus the constant.")
      .def("loss_and_gradients", [](const SharedNetwork& n, const py::sequence& graphs, const py::handle& labels,
                                    const std::string& precision, const py::object& node_labels) {
        GraphList list = graph_list(graphs, "graphs");
        const py::ssize_t T = n.config().num_targets;
        const auto y = float_array(labels, "labels", {static_cast<py::ssize_t>(list.inputs.size()), T});
        std::vector<py::array_t<float>> keep_node_labels;
        if (!node_labels.is_none()) {
          const py::sequence per_graph = node_labels.cast<py::sequence>();
          if (per_graph.size() != list.inputs.size())
            throw py::value_error("node_labels: " + std::to_string(per_graph.size()) + " entries for " +
                                  std::to_string(list.inputs.size()) + " graphs");
          for (size_t i = 0; i < list.inputs.size(); ++i) {
            if (per_graph[i].is_none()) continue;
            keep_node_labels.push_back(float_array(per_graph[i], "node_labels[" + std::to_string(i) + "]",
                                                   {static_cast<py::ssize_t>(list.inputs[i].num_nodes), T}));
            list.inputs[i].node_labels = keep_node_labels.back().data();
          }
        }
        const py::ssize_t B = static_cast<py::ssize_t>(list.inputs.size());
        const auto& layout = n.layout();
        py::dict grads;
        double loss = 0;
        if (precision == "float64") {
          std::vector<double> g, o;
          {
            py::gil_scoped_release release;
            loss = n.snapshot()->loss_and_gradients<double>(list.inputs, y.data(), &g, &o);
          }
          for (const auto& p : layout.params()) grads[py::str(p.name)] = param_array(g.data(), p);
          py::array_t<double> raw({B, T});
          std::memcpy(raw.mutable_data(), o.data(), o.size() * sizeof(double));
          return py::tuple(py::make_tuple(loss, raw, grads));
        }
        if (precision != "float32")
          throw py::value_error("precision must be 'float32' or 'float64', got '" + precision + "'");
        std::vector<float> g, o;
        {
          py::gil_scoped_release release;
          loss = n.snapshot()->loss_and_gradients<float>(list.inputs, y.data(), &g, &o);
        }
        for (const auto& p : layout.params()) grads[py::str(p.name)] = param_array(g.data(), p);
        return py::tuple(py::make_tuple(loss, matrix_of(o, B, T), grads));
      }, py::arg("graphs"), py::arg("labels"), py::arg("precision") = "float32", py::arg("node_labels") = py::none(),
         "(mean loss, raw outputs [n, targets], gradients by parameter name); node_labels: per graph "
         "None or float32 [num_nodes, targets] per-operator labels (the additive readout's node loss).")
      .def("train", [](SharedNetwork& n, const perfsage::GraphSet& train, const py::handle& train_labels,
                       const perfsage::GraphSet* val, const py::handle& val_labels,
                       perfsage::TrainOptions options, const py::object& on_epoch,
                       const py::object& on_batch, perfsage::TrainState* state) {
        // `options` is a copy (taken by value): the caller's object may change while this trains.
        const py::ssize_t T = n.config().num_targets;
        const auto y = float_array(train_labels, "train_labels", {static_cast<py::ssize_t>(train.size()), T});
        py::array_t<float> vy;
        if (val) vy = float_array(val_labels, "val_labels", {static_cast<py::ssize_t>(val->size()), T});
        // Python callbacks run on this thread with the GIL taken back (the core holds none of its
        // locks while calling them); an exception they raise, and Ctrl-C, stop training and are
        // re-raised once training has returned.
        std::exception_ptr callback_error;
        // `arguments` makes the call's argument tuple once the GIL is ours.
        auto call = [&](const py::object& callback, const auto& arguments) {
          py::gil_scoped_acquire acquire;
          try {
            if (PyErr_CheckSignals() != 0) throw py::error_already_set();
            if (callback.is_none()) return true;
            const py::object r = callback(*arguments());
            return r.is_none() || r.cast<bool>();
          } catch (...) {
            callback_error = std::current_exception();
            return false;
          }
        };
        perfsage::EpochCallback epoch_cb = [&](const perfsage::EpochStats& s) {
          return call(on_epoch, [&] { return py::make_tuple(stats_dict(s)); });
        };
        perfsage::BatchCallback batch_cb = [&](int64_t batch, int64_t batches) {
          return call(on_batch, [&] { return py::make_tuple(batch, batches); });
        };
        perfsage::TrainResult result;
        {
          py::gil_scoped_release release;
          result = n.train(train, y.data(), val, val ? vy.data() : nullptr, options, epoch_cb, batch_cb, state);
        }
        if (callback_error) std::rethrow_exception(callback_error);
        py::list history;
        for (const auto& s : result.history) history.append(stats_dict(s));
        py::dict out;
        out["history"] = history;
        out["best_epoch"] = result.best_epoch;
        out["stopped_early"] = result.stopped_early;
        out["interrupted"] = result.interrupted;
        return out;
      }, py::arg("train"), py::arg("train_labels"), py::arg("val").none(true), py::arg("val_labels"), py::arg("options"),
         py::arg("on_epoch") = py::none(), py::arg("on_batch") = py::none(), py::arg("state").none(true) = py::none(),
         "Trains with the GIL released; callbacks get the GIL back on this thread and may predict,\n"
         "read parameters or save (they see the weights of the last finished batch). With `state`\n"
         "(a TrainState), a run with epochs done goes on after them, and the state follows the run.")
      .def("to_bytes", [](const SharedNetwork& n, const std::vector<std::string>& names,
                          const std::vector<std::string>& units, const perfsage::TrainOptions& options,
                          const std::string& provenance, const SharedNetwork* companion) {
        perfsage::ModelInfo info{names, units, options, provenance};
        std::vector<uint8_t> bytes;
        {
          py::gil_scoped_release release;
          const auto net = n.snapshot();
          const auto other = companion ? companion->snapshot() : nullptr;
          bytes = perfsage::checkpoint_bytes(*net, info, other.get());
        }
        return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      }, py::arg("target_names"), py::arg("target_units"), py::arg("options"), py::arg("provenance_json"),
         py::arg("companion").none(true) = py::none(),
         "The checkpoint file's bytes (see cpp/include/perfsage/checkpoint.h), with the interval\n"
         "companion network when given.");

  m.def(
      "read_checkpoint",
      [](const py::object& data, const std::string& source) {
        ByteSource src = byte_source(data, "data");
        perfsage::Checkpoint ck = [&] {
          py::gil_scoped_release release;
          return perfsage::read_checkpoint(src.data, src.size, source);
        }();
        py::dict d;
        d["network"] = std::make_shared<SharedNetwork>(std::move(ck.network));
        d["target_names"] = ck.info.target_names;
        d["target_units"] = ck.info.target_units;
        d["options"] = ck.info.options;
        d["provenance_json"] = ck.info.provenance_json;
        d["companion"] = ck.companion ? py::cast(std::make_shared<SharedNetwork>(std::move(*ck.companion)))
                                      : py::object(py::none());
        return d;
      },
      py::arg("data"), py::arg("source") = "<bytes>",
      "Reads checkpoint bytes; raises PerfSageError naming what is wrong with them.");
  m.attr("CHECKPOINT_FORMAT_VERSION") = perfsage::kCheckpointFormatVersion;
}

// The perfsage._core extension: type conversion, GIL handling and docstrings only; the work is in
// cpp/.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "perfsage/error.h"
#include "perfsage/features.h"
#include "perfsage/graph.h"
#include "perfsage/ops.h"
#include "perfsage/writer.h"

namespace py = pybind11;
using perfsage::Graph;

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

}  // namespace

PYBIND11_MODULE(_core, m) {
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
              d["shape"] = py::tuple(py::cast(t.shape));
              d["shape_signature"] = py::tuple(py::cast(t.shape_signature));
              d["dtype"] = perfsage::dtype_name(t.dtype);
              d["buffer"] = t.buffer;
              d["data_bytes"] = t.data_bytes;
              d["num_bytes"] = t.num_bytes();
              d["is_constant"] = t.is_constant;
              d["is_variable"] = t.is_variable;
              d["is_sparse"] = t.is_sparse;
              py::dict q;
              q["scale"] = copy_array(t.quantization.scale);
              q["zero_point"] = copy_array(t.quantization.zero_point);
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
              d["inputs"] = op.inputs;
              d["outputs"] = op.outputs;
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
        py::list out;
        for (auto& r : results)
          out.append(py::make_tuple(r.graph ? py::cast(PyGraph{r.graph}) : py::object(py::none()),
                                    r.error));
        return out;
      },
      py::arg("items"), py::arg("threads") = 0,
      "Loads paths (str) and bytes-like items on `threads` threads (0: all cores) with the GIL\n"
      "released; returns a list of (Graph or None, error message) in item order.");

  m.def(
      "build_model",
      [](const std::string& spec_json, uint64_t seed, const std::string& dtype) {
        if (dtype != "int8" && dtype != "float32")
          throw py::value_error("dtype must be 'int8' or 'float32', got '" + dtype + "'");
        const auto type = dtype == "int8" ? perfsage::WeightType::kInt8 : perfsage::WeightType::kFloat32;
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
}

"""Building architecture specs layer by layer, with shapes and a cost estimate.

:class:`SpecBuilder` appends layers in the format of ``cpp/include/perfsage/spec.h`` and infers
each layer's output shape as it goes, so block builders can ask for channel counts and spatial
sizes, and search spaces can keep samples inside a MAC budget before any TFLite is written.

The cost estimate counts multiply-accumulates of the layers that dominate (conv2d,
depthwise_conv2d, dense, batch_matmul, lstm, svdf) and their weights and biases; it ignores the
small elementwise, pooling and reduction work and most of the constants perfsage's reader also
counts (layer-norm lowering, pad and transpose operands), so it is slightly below
``perfsage.load_tflite(...).totals``. The int32 operands of reshape, strided_slice, split and
split_v, which streaming and unrolled recurrent models hold by the hundred, are counted apart
(``SpecBuilder.constants``): the estimate includes them, the spaces' parameter budgets do not.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

Shape = Tuple[int, ...]
Size = Union[int, Sequence[int]]

# Ops whose single input passes through with its shape unchanged.
_SAME_SHAPE_OPS = frozenset(
    {"relu", "relu6", "logistic", "tanh", "hard_swish", "rsqrt", "softmax", "layer_norm", "leaky_relu", "exp", "abs",
     "prelu", "cast", "quantize", "dequantize"}
)
# Ops with several outputs, named "<layer>:<i>" (spec.h).
_MULTI_OUTPUT_OPS = frozenset({"split", "split_v", "unpack"})
_BINARY_OPS = frozenset({"add", "sub", "mul", "div", "squared_difference", "maximum", "minimum"})


def _pair(value: Size) -> Tuple[int, int]:
    if isinstance(value, int):
        return value, value
    h, w = value
    return int(h), int(w)


def _window_out(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Output length of a sliding window, TensorFlow's SAME/VALID rule."""
    if padding == "same":
        return -(-size // stride)
    return (size - ((kernel - 1) * dilation + 1)) // stride + 1


def _broadcast(a: Shape, b: Shape) -> Shape:
    rank = max(len(a), len(b))
    a = (1,) * (rank - len(a)) + a
    b = (1,) * (rank - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            raise ValueError(f"shapes {a} and {b} do not broadcast")
        out.append(max(x, y))
    return tuple(out)


def _split(x: Shape, p: Dict[str, Any], name: str, op: str) -> List[Shape]:
    """The output shapes of split (num_splits equal parts), split_v (parts of the given sizes) and
    unpack (one per index along the axis, without it)."""
    if op == "unpack":
        axis = int(p.get("axis", 0)) % len(x)
        return [x[:axis] + x[axis + 1:]] * x[axis]
    axis = int(p.get("axis", -1)) % len(x)
    if op == "split":
        sizes = [x[axis] // int(p["num_splits"])] * int(p["num_splits"])
    else:
        sizes = [int(s) for s in p["sizes"]]
    if sum(sizes) != x[axis] or min(sizes) <= 0:
        raise ValueError(f"layer {name!r}: cannot split dimension {axis} of {x} into {sizes}")
    return [x[:axis] + (s,) + x[axis + 1:] for s in sizes]


def _strided_slice(x: Shape, p: Dict[str, Any], name: str) -> Shape:
    """x[begin:end:strides] as Python slices it, with spec.h's begin_mask and end_mask."""
    def index(i: int, n: int) -> int:
        return min(max(i + n if i < 0 else i, 0), n)

    strides = p.get("strides", [1] * len(x))
    out = []
    for d, n in enumerate(x):
        begin = 0 if p.get("begin_mask", 0) >> d & 1 else index(int(p["begin"][d]), n)
        end = n if p.get("end_mask", 0) >> d & 1 else index(int(p["end"][d]), n)
        out.append(max(0, -(-(end - begin) // int(strides[d]))))
    if min(out) <= 0:
        raise ValueError(f"layer {name!r}: strided slice of {x} is empty")
    return tuple(out)


class SpecBuilder:
    """Accumulates the layers of one spec, tracking every tensor's shape and the cost so far.

    ``add`` returns the new layer's name, which later layers take as an input. Names are given by
    the caller (block builders prefix them with the block's name) and must be unique. Shape errors
    raise ``ValueError``: a search space that produces one has a bug.
    """

    def __init__(self, inputs: Dict[str, Sequence[int]], name: Optional[str] = None,
                 ranges: Optional[Dict[str, Tuple[float, float]]] = None) -> None:
        """``ranges``: the float range of the inputs that do not span spec.h's default [-1, 1]."""
        self.name = name
        ranges = ranges or {}
        self._inputs = [{"name": k, "shape": [int(d) for d in v],
                         **({"range": [float(x) for x in ranges[k]]} if k in ranges else {})}
                        for k, v in inputs.items()]
        self._layers: List[Dict[str, Any]] = []
        self._shapes: Dict[str, Shape] = {k: tuple(int(d) for d in v) for k, v in inputs.items()}
        self.outputs: List[str] = []  # the spec's outputs; empty: the last layer
        self.macs = 0
        self.params = 0
        self.constants = 0  # elements of the int32 operands counted apart (module docstring)
        self._dense_widths: Dict[str, Tuple[int, int]] = {}  # (features, units) of each dense layer

    def shape(self, tensor: str) -> Shape:
        """Shape of a spec input or of an earlier layer's output."""
        return self._shapes[tensor]

    def op_of(self, tensor: str) -> Optional[str]:
        """The op of the layer that produced ``tensor`` (None for a spec input)."""
        for layer in reversed(self._layers):
            if layer["name"] == tensor:
                return layer["op"]
        return None

    def channels(self, tensor: str) -> int:
        """Size of the last dimension (channels for NHWC images)."""
        return self._shapes[tensor][-1]

    def add(self, op: str, inputs: Union[str, Sequence[str]], name: str, **params: Any) -> str:
        """Appends one layer and returns its name."""
        if name in self._shapes:
            raise ValueError(f"layer name {name!r} is used twice")
        ins = [inputs] if isinstance(inputs, str) else list(inputs)
        for tensor in ins:
            if tensor not in self._shapes:
                raise ValueError(f"layer {name!r}: input {tensor!r} is not defined yet")
        shapes = [self._shapes[t] for t in ins]
        if op in _MULTI_OUTPUT_OPS:
            # Later layers name the outputs "<name>:<i>"; "<name>" alone is the first.
            outputs = _split(shapes[0], params, name, op)
            self.constants += {"split": 1, "split_v": len(outputs) + 1}.get(op, 0)  # axis, sizes
            self._shapes.update({f"{name}:{i}": s for i, s in enumerate(outputs)})
            self._shapes[name] = outputs[0]
        else:
            self._shapes[name] = self._infer(op, shapes, params, name)
        self._layers.append({"name": name, "op": op, "inputs": ins, **params})
        return name

    def spec(self) -> Dict[str, Any]:
        """The finished spec."""
        result: Dict[str, Any] = {}
        if self.name is not None:
            result["name"] = self.name
        result["inputs"] = [dict(i, shape=list(i["shape"])) for i in self._inputs]
        result["layers"] = [dict(layer) for layer in self._layers]
        result["outputs"] = list(self.outputs) if self.outputs else [self._layers[-1]["name"]]
        return result

    def _infer(self, op: str, shapes: List[Shape], p: Dict[str, Any], name: str) -> Shape:
        x = shapes[0] if shapes else ()
        if op in ("conv2d", "depthwise_conv2d"):
            n, h, w, c = x
            kh, kw = _pair(p["kernel"])
            sh, sw = _pair(p.get("stride", 1))
            dh, dw = _pair(p.get("dilation", 1))
            padding = p.get("padding", "same")
            oh = _window_out(h, kh, sh, dh, padding)
            ow = _window_out(w, kw, sw, dw, padding)
            if oh <= 0 or ow <= 0:
                raise ValueError(f"layer {name!r}: kernel {kh}x{kw} does not fit input {x}")
            if op == "conv2d":
                cout, per_output = int(p["filters"]), kh * kw * c
            else:
                cout, per_output = c * int(p.get("depth_multiplier", 1)), kh * kw
            self.macs += n * oh * ow * cout * per_output
            self.params += cout * per_output + (cout if p.get("bias", True) else 0)
            return (n, oh, ow, cout)
        if op == "transpose_conv2d":
            n, h, w, c = x
            kh, kw = _pair(p["kernel"])
            sh, sw = _pair(p.get("stride", 1))
            if p.get("padding", "same") == "same":
                oh, ow = h * sh, w * sw
            else:
                oh, ow = (h - 1) * sh + kh, (w - 1) * sw + kw
            cout = int(p["filters"])
            # Each input pixel is spread over a kernel window of every output channel.
            self.macs += n * h * w * c * kh * kw * cout
            self.params += cout * kh * kw * c + (cout if p.get("bias", True) else 0)
            return (n, oh, ow, cout)
        if op == "prelu":
            self.params += x[-1]  # the slopes
            return x
        if op in ("pad", "mirror_pad"):
            pads = p["paddings"]
            if len(pads) != len(x):
                raise ValueError(f"layer {name!r}: needs one [before, after] pair per dimension of {x}")
            return tuple(d + int(a) + int(z) for d, (a, z) in zip(x, pads))
        if op == "lstm":
            if len(x) != 3:
                raise ValueError(f"layer {name!r}: lstm needs a [batch, time, features] input, got {x}")
            units, gates = int(p["units"]), 4
            # Per step, each gate multiplies the frame and the previous output.
            self.macs += x[0] * x[1] * gates * units * (x[2] + units)
            self.params += gates * units * (x[2] + units + 1)
            if p.get("return_sequences", True):
                return x[:2] + (units,)
            self.constants += 3 * len(x)  # the last step's strided slice
            return (x[0], units)
        if op == "svdf":
            if len(x) != 2:
                raise ValueError(f"layer {name!r}: svdf needs a [batch, features] input, got {x}")
            units, filters, memory = int(p["units"]), int(p["units"]) * int(p.get("rank", 1)), int(p["memory"])
            self.macs += x[0] * filters * (x[1] + memory)
            self.params += filters * (x[1] + memory) + units
            return (x[0], units)
        if op == "dense":
            units = int(p["units"])
            self.macs += math.prod(x) * units
            if "weights_of" not in p:
                self.params += x[-1] * units + (units if p.get("bias", True) else 0)
                self._dense_widths[name] = (x[-1], units)
            elif self._dense_widths.get(p["weights_of"]) != (x[-1], units):
                raise ValueError(f"layer {name!r}: weights_of {p['weights_of']!r} is no dense layer with its own "
                                 f"weights of {units} units on {x[-1]} features")
            return x[:-1] + (units,)
        if op in _BINARY_OPS:
            if "constant" in p:  # one input and a constant operand: a scalar or one per channel
                self.params += 1 if p["constant"] == "scalar" else x[-1]
                return x
            return _broadcast(shapes[0], shapes[1])
        if op in _SAME_SHAPE_OPS:
            if op == "layer_norm":
                self.params += 2 * x[-1]  # gamma and beta
            return x
        if op == "pack":
            if any(s != x for s in shapes):
                raise ValueError(f"layer {name!r}: cannot stack shapes {shapes}")
            axis = int(p.get("axis", 0)) % (len(x) + 1)
            return x[:axis] + (len(shapes),) + x[axis:]
        if op == "concat":
            axis = p.get("axis", -1) % len(x)
            out = list(x)
            out[axis] = sum(s[axis] for s in shapes)
            return tuple(out)
        if op in ("avg_pool2d", "max_pool2d"):
            ph, pw = _pair(p["pool"])
            sh, sw = _pair(p.get("stride", p["pool"]))
            padding = p.get("padding", "valid")
            oh, ow = _window_out(x[1], ph, sh, 1, padding), _window_out(x[2], pw, sw, 1, padding)
            if oh <= 0 or ow <= 0:
                raise ValueError(f"layer {name!r}: pool {ph}x{pw} does not fit input {x}")
            return (x[0], oh, ow, x[3])
        if op == "global_avg_pool":
            return (x[0], 1, 1, x[3])
        if op == "arg_max":
            axis = int(p.get("axis", -1)) % len(x)
            self.params += 1  # its axis: a zoo sample of pads and an arg_max is all such constants
            return x[:axis] + x[axis + 1:] or (1,)
        if op == "gather":
            axis = int(p.get("axis", 0)) % len(x)
            if not p["indices"] or min(p["indices"]) < 0 or max(p["indices"]) >= x[axis]:
                raise ValueError(f"layer {name!r}: indices {p['indices']} outside dimension {axis} of {x}")
            self.params += len(p["indices"])  # a constant as large as a small layer's weights
            return x[:axis] + (len(p["indices"]),) + x[axis + 1:]
        if op in ("mean", "sum", "reduce_max"):
            axes = {a % len(x) for a in p["axes"]}
            if p.get("keep_dims", True):
                return tuple(1 if i in axes else d for i, d in enumerate(x))
            return tuple(d for i, d in enumerate(x) if i not in axes)
        if op == "reshape":
            shape = [int(d) for d in p["shape"]]
            if -1 in shape:
                known = math.prod(d for d in shape if d != -1)
                shape[shape.index(-1)] = math.prod(x) // known
            if math.prod(shape) != math.prod(x):
                raise ValueError(f"layer {name!r}: cannot reshape {x} to {p['shape']}")
            self.constants += len(shape)
            return tuple(shape)
        if op == "transpose":
            return tuple(x[i] for i in p["perm"])
        if op == "strided_slice":
            self.constants += 3 * len(x)  # begin, end, strides
            return _strided_slice(x, p, name)
        if op == "slice":
            out = tuple(d - int(b) if s == -1 else int(s) for d, b, s in zip(x, p["begin"], p["size"]))
            if len(p["begin"]) != len(x) or len(p["size"]) != len(x) or min(out) <= 0:
                raise ValueError(f"layer {name!r}: slice {p['begin']}+{p['size']} does not fit {x}")
            return out
        if op == "squeeze":
            axes = {a % len(x) for a in p.get("axes", [i for i, d in enumerate(x) if d == 1])}
            if any(x[a] != 1 for a in axes):
                raise ValueError(f"layer {name!r}: cannot squeeze dimensions {sorted(axes)} of {x}")
            return tuple(d for i, d in enumerate(x) if i not in axes)
        if op == "expand_dims":
            axis = int(p["axis"]) % (len(x) + 1)
            return x[:axis] + (1,) + x[axis:]
        if op == "depth_to_space":
            b = int(p["block_size"])
            if x[3] % (b * b):
                raise ValueError(f"layer {name!r}: {x[3]} channels not divisible by {b * b}")
            return (x[0], x[1] * b, x[2] * b, x[3] // (b * b))
        if op in ("resize_bilinear", "resize_nearest"):
            h, w = _pair(p["size"])
            return (x[0], h, w, x[3])
        if op == "batch_matmul":
            a, b = shapes
            m, k = (a[-1], a[-2]) if p.get("adj_x", False) else (a[-2], a[-1])
            k2, n = (b[-1], b[-2]) if p.get("adj_y", False) else (b[-2], b[-1])
            if k != k2:
                raise ValueError(f"layer {name!r}: cannot multiply {a} by {b}")
            batch = _broadcast(a[:-2], b[:-2])
            self.macs += math.prod(batch) * m * n * k
            return batch + (m, n)
        raise ValueError(f"layer {name!r}: the builder has no shape rule for op {op!r}")


def estimate_cost(spec: Dict[str, Any]) -> Dict[str, int]:
    """``{"macs", "params"}`` of a spec, by replaying its layers through a :class:`SpecBuilder`;
    the params include the builder's ``constants``.

    Accepts specs that rely on the defaults of spec.h (omitted ``inputs`` or names).
    """
    builder = SpecBuilder({i["name"]: i["shape"] for i in spec["inputs"]})
    previous = spec["inputs"][0]["name"]
    for index, layer in enumerate(spec["layers"]):
        params = {k: v for k, v in layer.items() if k not in ("name", "op", "inputs")}
        name = layer.get("name", f"{layer['op']}_{index}")
        previous = builder.add(layer["op"], layer.get("inputs", previous), name, **params)
    return {"macs": builder.macs, "params": builder.params + builder.constants}

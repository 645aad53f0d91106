"""Small transformer encoders on [1, sequence, features] inputs, with a classifier."""

from __future__ import annotations

import math

import numpy as np

from ._blocks import choice, dense
from ._builder import SpecBuilder
from ._space import SearchSpace

MIN_HEAD_DIM = 8

KNOBS = {
    "sequence_length": [16, 32, 49, 64, 128],
    "d_model": [32, 64, 96, 128, 192],
    "num_heads": "1, 2, 4 or 8, among those leaving at least 8 features per head",
    "num_blocks": [1, 2, 3, 4],
    "ffn_ratio": [1, 2, 4],
    "ffn_activation": ["relu", "hard_swish"],
    "num_classes": [2, 10, 12, 35],
}
HEADS = [1, 2, 4, 8]


def _split_heads(b: SpecBuilder, x: str, name: str, heads: int) -> str:
    """[1, S, D] -> [1, heads, S, D / heads]."""
    _, seq, d = b.shape(x)
    y = b.add("reshape", x, f"{name}_split", shape=[1, seq, heads, d // heads])
    return b.add("transpose", y, f"{name}_heads", perm=[0, 2, 1, 3])


def attention(b: SpecBuilder, x: str, name: str, heads: int) -> str:
    """Multi-head self-attention: dense Q, K, V -> per head softmax(Q K^T / sqrt(d_head)) V ->
    merged heads -> dense. The 1/sqrt(d_head) scale is the softmax's beta."""
    _, seq, d = b.shape(x)
    q, k, v = (dense(b, x, f"{name}_{p}", d) for p in "qkv")
    if heads > 1:
        q, k, v = (_split_heads(b, t, t, heads) for t in (q, k, v))
    scores = b.add("batch_matmul", [q, k], f"{name}_scores", adj_y=True)
    probs = b.add("softmax", scores, f"{name}_probs", beta=1.0 / math.sqrt(d // heads))
    y = b.add("batch_matmul", [probs, v], f"{name}_context")
    if heads > 1:
        y = b.add("transpose", y, f"{name}_merge", perm=[0, 2, 1, 3])
        y = b.add("reshape", y, f"{name}_merged", shape=[1, seq, d])
    return dense(b, y, f"{name}_out", d)


def encoder_block(b: SpecBuilder, x: str, name: str, heads: int, ffn_units: int, ffn_act: str) -> str:
    """Pre-norm encoder block: x + attention(LN(x)), then y + FFN(LN(y))."""
    h = b.add("layer_norm", x, f"{name}_ln1")
    x = b.add("add", [x, attention(b, h, f"{name}_attn", heads)], f"{name}_attn_add")
    h = b.add("layer_norm", x, f"{name}_ln2")
    h = dense(b, h, f"{name}_ffn1", ffn_units, act=ffn_act)
    h = dense(b, h, f"{name}_ffn2", b.channels(x))
    return b.add("add", [x, h], f"{name}_ffn_add")


def build(rng: np.random.Generator) -> SpecBuilder:
    """Draws one encoder: blocks, final layer norm, mean over the sequence, dense, softmax."""
    seq, d = choice(rng, KNOBS["sequence_length"]), choice(rng, KNOBS["d_model"])
    heads = choice(rng, [h for h in HEADS if d % h == 0 and d // h >= MIN_HEAD_DIM])
    ffn_units = d * choice(rng, KNOBS["ffn_ratio"])
    ffn_act = choice(rng, KNOBS["ffn_activation"])
    b = SpecBuilder({"tokens": [1, seq, d]})
    y = "tokens"
    for i in range(choice(rng, KNOBS["num_blocks"])):
        y = encoder_block(b, y, f"block{i + 1}", heads, ffn_units, ffn_act)
    y = b.add("layer_norm", y, "final_ln")
    y = b.add("mean", y, "pool", axes=[1], keep_dims=False)
    y = dense(b, y, "logits", choice(rng, KNOBS["num_classes"]))
    b.add("softmax", y, "probs")
    return b


SPACE = SearchSpace(
    name="transformer",
    description=(
        "Pre-norm transformer encoders on [1, 16-128, 32-192] inputs: 1-4 blocks of layer norm, "
        "multi-head attention (batch_matmul, softmax), dense FFN with ReLU or hard-swish, residual "
        "adds; then mean over the sequence and a dense-softmax classifier"
    ),
    knobs=KNOBS,
    build=build,
    max_macs=150_000_000,
)

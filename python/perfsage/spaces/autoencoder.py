"""Anomaly detection: fully connected autoencoders like MLPerf Tiny's ToyADMOS model."""

from __future__ import annotations

import numpy as np

from ._blocks import choice, dense
from ._builder import SpecBuilder
from ._space import SearchSpace

KNOBS = {
    "input_dim": [160, 320, 640, 1280],  # 5 frames x 32-256 log-mel bins (MLPerf Tiny: 640)
    "encoder_layers": [1, 2, 3, 4],
    "hidden_units": [16, 32, 64, 128, 256, 512],
    "bottleneck": [8, 16, 32],
}


def build(rng: np.random.Generator) -> SpecBuilder:
    """Draws one autoencoder: dense + ReLU encoder layers (units drawn per layer), a dense + ReLU
    bottleneck, the decoder mirroring the encoder, and a linear reconstruction of the input
    (MLPerf Tiny: four 128-unit layers each side of an 8-unit bottleneck)."""
    input_dim = choice(rng, KNOBS["input_dim"])
    hidden = [choice(rng, KNOBS["hidden_units"]) for _ in range(choice(rng, KNOBS["encoder_layers"]))]
    b = SpecBuilder({"features": [1, input_dim]})
    y = "features"
    for i, units in enumerate(hidden):
        y = dense(b, y, f"enc{i + 1}", units, act="relu")
    y = dense(b, y, "bottleneck", choice(rng, KNOBS["bottleneck"]), act="relu")
    for i, units in enumerate(reversed(hidden)):
        y = dense(b, y, f"dec{i + 1}", units, act="relu")
    dense(b, y, "reconstruction", input_dim)
    return b


SPACE = SearchSpace(
    name="autoencoder",
    description=(
        "Fully connected anomaly-detection autoencoders on [1, 160-1280] features: 1-4 dense "
        "ReLU layers each side of an 8-32 unit bottleneck"
    ),
    knobs=KNOBS,
    build=build,
)

"""Content ids: one stable name per model, computed without building the model.

A row's id is the first 128 bits (32 hex digits) of SHA-256 over a canonical JSON *key* of what
determines the model:

- generated models: ``{"dtype", "seed", "spec"}`` with the spec in canonical JSON. The writer is
  deterministic in exactly these three, so they name the model. Hashing them rather than the TFLite
  bytes lets a labelling job know every planned id before building anything, which is what resuming
  needs: planning 20,000 image-classification models by building them would take minutes, while
  hashing their specs takes well under a second. It also keeps ids stable when the writer's
  byte-level output changes between perfsage versions; the row's provenance records the version
  that wrote its ``tflite`` column.
- model files that no spec describes (imported measurements): ``{"tflite_sha256"}`` of the bytes.
- NAS-Bench-201 cells with no input->output path, which no spec describes:
  ``{"dtype", "nb201_arch", "seed"}``.

128 bits keep accidental collisions out of reach (about 2^64 models before one is likely) at half
the storage of a full digest.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Union

_PREFIX = b"perfsage-model-id/1\n"


def canonical_json(value: Any) -> str:
    """JSON text with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def canonical_spec(spec: Union[str, Mapping[str, Any]]) -> str:
    """The canonical JSON text of a spec given as a dict or as JSON text.

    The writer reads objects by key, so key order does not change the model; canonical text gives
    one id per model however the spec was spelled.
    """
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as e:
            raise ValueError(f"spec is not valid JSON: {e}") from None
    if not isinstance(spec, Mapping):
        raise ValueError(f"a spec must be a JSON object, got {type(spec).__name__}")
    return canonical_json(spec)


def content_id(key: Mapping[str, Any]) -> str:
    """The id of the model that ``key`` names (see the module docstring for the keys in use)."""
    return hashlib.sha256(_PREFIX + canonical_json(dict(key)).encode("ascii")).hexdigest()[:32]


def spec_id(spec: Union[str, Mapping[str, Any]], seed: int, dtype: str) -> str:
    """The id of the model that ``build_model(spec, seed=seed, dtype=dtype)`` writes."""
    return content_id({"dtype": dtype, "seed": int(seed), "spec": json.loads(canonical_spec(spec))})


def model_id(model: bytes) -> str:
    """The id of a model known only by its TFLite bytes."""
    return content_id({"tflite_sha256": hashlib.sha256(model).hexdigest()})

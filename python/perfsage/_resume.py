"""Training that survives being stopped: ``Predictor.fit(..., checkpoint=path)``.

After every whole epoch, fit writes one file (atomically) holding the network as it is at that
moment and the optimiser's state (``_core.TrainState``: Adam's moments and step, the best epoch's
weights, the history). A fit given a path that exists goes on after the epochs done, to the weights
an uninterrupted run reaches, bit for bit; one given a path that belongs to other data, another
network or another number of epochs raises instead of mixing two runs.

The file is a NumPy ``.npz`` (no pickled objects): ``predictor`` (the checkpoint bytes that
``Predictor.save`` writes), ``m``, ``v`` and ``best_params`` (float32) and ``meta`` (JSON: the
counters, history, epochs and a fingerprint of the training data).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple

import numpy as np

from . import _core
from ._io import __version__, atomic_write

if TYPE_CHECKING:
    from ._predictor import Predictor

FORMAT = "perfsage-training-state/1"
_ARRAYS = ("m", "v", "best_params")


def fingerprint(labels: np.ndarray, node_labelled: int, val_labels: Optional[np.ndarray]) -> str:
    """A digest of what a run trains and validates on (its labels, and how many graphs have
    per-operator labels), so a resumed run can tell its own data from other data."""
    h = hashlib.sha256()
    for part in (labels, val_labels):
        a = np.ascontiguousarray(part if part is not None else np.zeros((0, 0)), dtype=np.float32)
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    h.update(str(node_labelled).encode())
    return h.hexdigest()


def write(path: "os.PathLike[str] | str", predictor: "Predictor", state: "_core.TrainState", epochs: int,
          data_fingerprint: str) -> None:
    """Saves ``predictor``'s current weights with ``state`` (their matching pair, taken between epochs)."""
    values = state.to_dict()
    meta = {"format": FORMAT, "perfsage_version": __version__, "epochs": int(epochs),
            "fingerprint": data_fingerprint, "targets": predictor.output_names,
            "hyperparameters": _comparable(predictor.hyperparameters),
            **{k: values[k] for k in ("epochs_done", "step", "best_loss", "best_epoch", "stopped_early", "history")}}
    buffer = io.BytesIO()
    np.savez(buffer, predictor=np.frombuffer(predictor.to_bytes(), dtype=np.uint8),
             meta=np.array(json.dumps(meta)), **{k: values[k] for k in _ARRAYS})
    data = buffer.getvalue()
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def read(path: "os.PathLike[str] | str", predictor: "Predictor", epochs: int, data_fingerprint: str
         ) -> Tuple[Any, "_core.TrainState"]:
    """The saved network and state of ``path``, checked to be ``predictor``'s run: same targets,
    hyperparameters, epochs and data. Raises ValueError naming the file and what differs."""
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            missing = [k for k in ("predictor", "meta", *_ARRAYS) if k not in z.files]
            if missing:
                raise ValueError(f"it lacks {missing}")
            meta = json.loads(str(z["meta"]))
            saved_bytes = z["predictor"].tobytes()
            arrays = {k: np.ascontiguousarray(z[k], dtype=np.float32) for k in _ARRAYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise ValueError(f"fit: checkpoint {os.fspath(path)} is not a training state perfsage can read ({e}); "
                         "delete it to start the run afresh") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"fit: checkpoint {os.fspath(path)} has format {meta.get('format')!r}, this perfsage "
                         f"({__version__}) reads {FORMAT!r}; delete it to start the run afresh")
    differences = _differences(meta, predictor, epochs, data_fingerprint)
    if differences:
        raise ValueError(f"fit: checkpoint {os.fspath(path)} is another run's (" + "; ".join(differences) +
                         "); use another path, or delete it to start this run afresh")
    network = _core.read_checkpoint(saved_bytes, os.fspath(path))["network"]
    state = _core.TrainState({**{k: meta[k] for k in ("epochs_done", "step", "best_loss", "best_epoch",
                                                               "stopped_early", "history")}, **arrays})
    return network, state


def _comparable(hyperparameters: Dict[str, Any]) -> Dict[str, Any]:
    """Hyperparameters as JSON gives them back (``epochs`` and ``threads`` are the call's, not the run's)."""
    return json.loads(json.dumps({k: v for k, v in hyperparameters.items() if k not in ("epochs", "threads")},
                                 default=str))


def _differences(meta: Dict[str, Any], predictor: "Predictor", epochs: int, data_fingerprint: str) -> Sequence[str]:
    out = []
    if meta.get("targets") != predictor.output_names:
        out.append(f"targets {meta.get('targets')} vs {predictor.output_names}")
    if meta.get("epochs") != epochs:
        out.append(f"epochs {meta.get('epochs')} vs {epochs}")
    mine = _comparable(predictor.hyperparameters)
    theirs = meta.get("hyperparameters", {})
    changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if changed:
        out.append("hyperparameters " + ", ".join(f"{k}={theirs.get(k)!r} vs {mine.get(k)!r}" for k in changed))
    if meta.get("fingerprint") != data_fingerprint:
        out.append("its training or validation data differ from these")
    return out

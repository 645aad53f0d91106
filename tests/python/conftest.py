"""Shared fixtures. Real models and device data come from one setting, PERFSAGE_DATA
(default: ../shared/data next to the repository). Without it the tests that need it skip, saying
why, except under CI (CI=true), where missing data is an error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("PERFSAGE_DATA", REPO.parent / "shared" / "data")).resolve()
MODELS_DIR = DATA_DIR / "models"


def _require(path: Path) -> Path:
    if path.exists():
        return path
    message = (
        f"{path} not found: set PERFSAGE_DATA to the shared data folder "
        "(see README, 'Test data') to run the tests on real models"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _require(DATA_DIR)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _require(MODELS_DIR)


@pytest.fixture(scope="session")
def real_models(models_dir: Path) -> List[Path]:
    models = sorted(models_dir.glob("*.tflite"))
    if not models:
        pytest.fail(f"{models_dir} holds no .tflite files")
    return models

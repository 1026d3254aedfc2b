"""Where the service's router comes from: ``HIVEMESH_NLU_MODEL`` when set, otherwise the router for
hivemesh's own intents, trained from the shipped data file and cached under the data directory
keyed by the file's hash (a changed file retrains; an unchanged one loads in milliseconds)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from hivemesh.language.nlu.dataset import file_digest, load_splits, require, stratified_holdout
from hivemesh.language.nlu.factory import encoder_loader
from hivemesh.language.nlu.router import FORMAT_VERSION, Router
from hivemesh.language.nlu.training import TRAINING_VERSION, fit_router
from hivemesh.mesh.config import ConfigError

_log = logging.getLogger(__name__)

SHIPPED_INTENTS = Path(__file__).resolve().parent / "data" / "intents.json"


def load_router(model_dir: Path | None, data_dir: Path, env: Mapping[str, str]) -> Router:
    if model_dir is not None:
        if not (model_dir / "router.json").is_file():
            raise ConfigError(f"HIVEMESH_NLU_MODEL={model_dir} holds no trained router (router.json)")
        return Router.load(model_dir, encoder_loader(env))
    return shipped_router(SHIPPED_INTENTS, data_dir / "nlu")


def shipped_router(data_file: Path, cache_root: Path) -> Router:
    """The lexical router for ``data_file``, from the cache or trained now and cached."""
    digest = file_digest(data_file)
    # The format and the training procedure are part of the name, so a router cached by an older
    # release is not reused.
    cached = cache_root / f"lexical-v{FORMAT_VERSION}.{TRAINING_VERSION}-{digest[:16]}"
    if (cached / "router.json").is_file():
        try:
            return Router.load(cached, encoder_loader({}))
        except (ValueError, KeyError, OSError) as exc:
            _log.warning("cached router %s unreadable (%s); retraining", cached, exc)
    splits = load_splits(data_file)
    train = require(splits, "train", data_file)
    calibration = splits.get("val") or []
    if not calibration:
        train, calibration = stratified_holdout(train, 0.2)
    router = fit_router(
        [(e.text, e.intent) for e in train],
        [(e.text, e.intent) for e in calibration],
        info={"data_sha256": digest, "data_file": data_file.name},
    )
    cache_root.mkdir(parents=True, exist_ok=True)
    # Written beside the final place and renamed, so a concurrent start never reads half a router.
    staging = Path(tempfile.mkdtemp(prefix=".router-", dir=cache_root))
    router.save(staging)
    try:
        os.replace(staging, cached)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return router

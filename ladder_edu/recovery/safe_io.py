"""Files students share, stored so that reading one can never run code: safetensors and JSON, no pickles.

* ``save_tensors(path, tensors, meta)``: one safetensors file, with ``meta`` (any JSON) in its header; written to a
  temporary file and renamed, so a reader sees the old file or the new one, never half of one.
* ``load_tensors(path)`` -> (tensors, meta). Only safetensors files are read; a pickle (``.pt``, ``.pkl``) found
  where a checkpoint or model should be is refused with an error naming it (``refuse_pickles``), never loaded.
* A **model directory** (what ``ladder-edu finetune`` writes per trained model, and ``ladder-edu evaluate
  --model DIR`` reads): ``config.json`` (a ``ModelConfig``) and ``model.safetensors`` (the full weights).
"""
from __future__ import annotations

import dataclasses
import json
import os

import torch

from ..models.config import ModelConfig
from ..util import atomic

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin")
CONFIG, WEIGHTS = "config.json", "model.safetensors"


def _safetensors():
    try:
        from safetensors import safe_open
        from safetensors.torch import save_file
    except ImportError as e:
        raise ValueError("reading and writing checkpoints needs the safetensors package: "
                         "python -m pip install safetensors") from e
    return safe_open, save_file


def save_tensors(path: str, tensors: dict[str, torch.Tensor], meta=None) -> None:
    """Write ``tensors`` (and ``meta``, JSON) to ``path`` atomically."""
    _, save_file = _safetensors()
    with atomic.atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, tmp,
                  metadata={"json": json.dumps(meta if meta is not None else {})})


def load_tensors(path: str) -> tuple[dict[str, torch.Tensor], object]:
    """(tensors, meta) of a file written by ``save_tensors``; a clear error for anything else."""
    safe_open, _ = _safetensors()
    if path.endswith(PICKLE_SUFFIXES):
        raise ValueError(f"refusing to load {path!r}: a pickle can run code when loaded; ladder_edu reads only "
                         f".safetensors and .json files")
    try:
        with safe_open(path, framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("json", "{}"))
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except FileNotFoundError:
        raise ValueError(f"no such file: {path!r}") from None
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise ValueError(f"{path!r} is not a readable safetensors file ({type(e).__name__}: {e})") from None


def refuse_pickles(directory: str) -> None:
    """Raise if ``directory`` holds pickle files where ladder_edu expects only safetensors and JSON."""
    if os.path.isdir(directory):
        found = sorted(n for n in os.listdir(directory) if n.endswith(PICKLE_SUFFIXES))
        if found:
            raise ValueError(f"{directory!r} holds pickle file(s) {found}: ladder_edu never unpickles files (a "
                             f"pickle can run code when loaded). Delete them, or use a directory written by this "
                             f"version of ladder-edu finetune")


def save_model_dir(directory: str, cfg: ModelConfig, state: dict[str, torch.Tensor], info=None) -> str:
    """Write a model directory: config.json and model.safetensors (``info`` goes into the weights' header)."""
    os.makedirs(directory, exist_ok=True)
    save_tensors(os.path.join(directory, WEIGHTS), state, info or {})
    atomic.write_json(os.path.join(directory, CONFIG), dataclasses.asdict(cfg))
    return directory


def is_model_dir(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, CONFIG)) and os.path.isfile(os.path.join(directory, WEIGHTS))


def load_model_dir(directory: str) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(config, full weights) of a model directory, checked."""
    if not os.path.isdir(directory):
        raise ValueError(f"no such model directory: {directory!r}")
    refuse_pickles(directory)
    if not is_model_dir(directory):
        raise ValueError(f"{directory!r} is not a model directory: it needs {CONFIG} and {WEIGHTS} (written by "
                         f"ladder-edu finetune)")
    try:
        with open(os.path.join(directory, CONFIG)) as f:
            cfg = ModelConfig(**json.load(f))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{os.path.join(directory, CONFIG)!r} is not a valid model config ({e})") from None
    state, _ = load_tensors(os.path.join(directory, WEIGHTS))
    return cfg, state

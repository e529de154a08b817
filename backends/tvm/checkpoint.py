"""Where an artifact's weights come from: a checkpoint, or the PyTorch backend's initialisation (seeded).

    checkpoint_state(path, model) -> {param id: f32 array}   a .safetensors file (livc parameter ids, or Hugging
                                                             Face names) or a Hugging Face directory
    initial_state(model, seed) -> {param id: f32 array}      the generated PyTorch module's own init after
                                                             torch.manual_seed(seed)

Hugging Face names go through the PyTorch backend's explicit tables (backends/pytorch/hf.py): every missing,
unexpected or wrong-shaped tensor is reported together as TvmError E0703. A file whose names are all livc
parameter ids (e.g. `safetensors.torch.save_file(module.state_dict())` of a generated module) is used as is.

Preconditions: torch and safetensors installed; `model` is the canonicalize-stage IR the PyTorch backend
consumes (its parameter ids are the lower stage's). Non-goals: GGUF or .bin checkpoints, dtype choices (f32).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from livc.backends.pytorch.hf_configs import HFImportError
from livc.backends.tvm.errors import ARTIFACT, TvmError
from livc.compiler.ir.nodes import Model


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise TvmError(ARTIFACT, "weights need torch (pip install 'livc[torch]')") from exc
    return torch


def _numpy(tensors: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: v.detach().float().cpu().numpy() for k, v in tensors.items()}


def initial_state(model: Model, seed: int = 0) -> dict[str, np.ndarray]:
    """The PyTorch backend's initialisation of `model` (f32) under seed `seed`, keyed by parameter id."""
    torch = _torch()
    from livc.backends.pytorch.generate import generate
    from livc.backends.pytorch.load import Built

    built = Built.load(model, generate(model, "<livc build>", ""))
    torch.manual_seed(seed)
    module = built.model_class(dtype=torch.float32)
    return _numpy(dict(module.state_dict()))


def checkpoint_state(path: Path, model: Model) -> dict[str, np.ndarray]:
    """The tensors of a checkpoint file or Hugging Face directory, keyed by the livc parameter ids of `model`."""
    _torch()
    from livc.backends.pytorch.hf import hf_state_dict_to_livc, infer_arch, read_source

    if not path.exists():
        raise TvmError(ARTIFACT, f"checkpoint {path} does not exist")
    try:
        tensors, arch = read_source(path)
        ids = {p.id: tuple(p.shape) for p in model.params}
        if arch is None and set(ids) <= set(tensors):
            return _own(path, tensors, ids)
        return _numpy(hf_state_dict_to_livc(arch or _arch(path, tensors, ids, infer_arch), tensors, model))
    except HFImportError as exc:
        raise TvmError(ARTIFACT, f"checkpoint {path}: {exc}") from exc
    except (OSError, ValueError, RuntimeError) as exc:  # unreadable / not safetensors
        raise TvmError(ARTIFACT, f"checkpoint {path} cannot be read: {exc}") from exc


def _arch(path: Path, tensors: dict[str, Any], ids: dict[str, tuple[int, ...]], infer: Any) -> str:
    """The HF architecture of a bare .safetensors file; E0703 when its names are neither livc's nor HF's."""
    try:
        return str(infer(tensors))
    except HFImportError as exc:
        lacking = sorted(set(ids) - set(tensors))[:3]
        raise TvmError(
            ARTIFACT,
            f"checkpoint {path}: its tensor names are neither the model's parameter ids (it lacks "
            f"{', '.join(lacking)}) nor those of a Hugging Face LFM2 / Llama / Qwen2 checkpoint",
        ) from exc


def _own(path: Path, tensors: dict[str, Any], ids: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """A checkpoint already keyed by livc parameter ids (shapes checked; extra tensors such as a tied head
    saved twice are ignored)."""
    wrong = [
        f"{k}: checkpoint {tuple(tensors[k].shape)}, model {s}" for k, s in ids.items() if tuple(tensors[k].shape) != s
    ]
    if wrong:
        raise TvmError(ARTIFACT, f"checkpoint {path} has tensors of the wrong shape: " + "; ".join(wrong[:5]))
    return _numpy({k: tensors[k] for k in ids})

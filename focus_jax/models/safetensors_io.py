"""Reading and writing Hugging Face checkpoints in the safetensors format, without torch.

Reading goes through the ``safetensors`` library (``safe_open(..., framework="numpy")``;
bfloat16 arrives as ``ml_dtypes.bfloat16``, which ``import ml_dtypes`` registers with
numpy). The library validates the header before any tensor is read: a header length past
the end of the file, invalid JSON, an unknown dtype, a shape whose byte size overflows,
and byte ranges that overlap, leave gaps or run past the end of the file are refused
(``CheckpointError``, naming the file and the library's reason). Writing uses
``safetensors.numpy.save_file``.

Only safetensors are accepted: pickled ``.bin``/``.pt`` checkpoints are refused, because
unpickling runs arbitrary code from the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy, which safe_open's numpy backend needs)
import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from focus_jax.errors import InputError

__all__ = ["CheckpointError", "read_checkpoint", "read_safetensors", "write_checkpoint", "write_safetensors"]

#: safetensors dtypes a checkpoint may hold (the library knows more, e.g. F8_*, which
#: numpy cannot represent).
SUPPORTED_DTYPES = ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL")

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_INDEX_NAME = "model.safetensors.index.json"
_SINGLE_NAME = "model.safetensors"


class CheckpointError(InputError):
    """A checkpoint directory or file is missing, malformed, or does not fit the model."""


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """All tensors of one ``.safetensors`` file as numpy arrays.

    Returns:
        ``{name: array}`` in the file's dtypes (bfloat16 as ``ml_dtypes.bfloat16``).

    Raises:
        CheckpointError: the file is truncated or its header invalid (see the module
            docstring), or a tensor has a dtype outside ``SUPPORTED_DTYPES`` (named).
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                dtype = f.get_slice(name).get_dtype()
                if dtype not in SUPPORTED_DTYPES:
                    raise CheckpointError(f"{path}: tensor {name!r} has dtype {dtype}, which focus-jax does not load")
            return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file ({' '.join(str(exc).split())})") from None


def read_checkpoint(directory: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a Hugging Face model directory: one ``model.safetensors`` or a sharded
    ``model.safetensors.index.json`` with its shards.

    Raises:
        CheckpointError: ``directory`` does not exist, no safetensors weights (pickled
            ``.bin``/``.pt`` files are refused with the reason), a shard named by the index is
            missing, a tensor appears in two shards, or the index's ``weight_map`` disagrees
            with the shards.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {directory}")
    index = directory / _INDEX_NAME
    if index.is_file():
        from focus_jax.inputs.jsonfile import read_json_object

        weight_map = read_json_object(index).get("weight_map")
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) and "/" not in v for v in weight_map.values()
        ):
            raise CheckpointError(f"{index}: weight_map must map tensor names to shard file names")
        tensors: dict[str, np.ndarray] = {}
        for shard in sorted(set(weight_map.values())):
            shard_path = directory / shard
            if not shard_path.is_file():
                raise CheckpointError(f"{index} names shard {shard!r}, which is missing from {directory}")
            for name, array in read_safetensors(shard_path).items():
                if name in tensors:
                    raise CheckpointError(f"tensor {name!r} appears in more than one shard of {directory}")
                if weight_map.get(name) != shard:
                    raise CheckpointError(
                        f"tensor {name!r} is in shard {shard!r} but the index maps it to {weight_map.get(name)!r}"
                    )
                tensors[name] = array
        missing = sorted(set(weight_map) - set(tensors))
        if missing:
            raise CheckpointError(f"{index} lists tensors found in no shard, e.g. {missing[0]!r}")
        return tensors
    single = directory / _SINGLE_NAME
    if single.is_file():
        return read_safetensors(single)
    files = sorted(directory.glob("*.safetensors"))
    if len(files) == 1:
        return read_safetensors(files[0])
    pickled = sorted(p.name for p in directory.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickled:
        raise CheckpointError(
            f"{directory} holds only pickled weights ({', '.join(pickled)}); focus-jax loads safetensors only, because "
            "unpickling a .bin/.pt file can execute arbitrary code. Convert it once in a trusted environment, e.g. "
            "`AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`."
        )
    if files:
        raise CheckpointError(f"{directory} holds several .safetensors files but no {_INDEX_NAME}")
    raise CheckpointError(f"{directory} holds no model weights ({_SINGLE_NAME} or {_INDEX_NAME})")


def write_safetensors(path: str | Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` to one ``.safetensors`` file (``safetensors.numpy.save_file``).

    Raises:
        CheckpointError: a tensor's dtype has no safetensors name.
    """
    path = Path(path)
    arrays = {name: np.ascontiguousarray(array) for name, array in tensors.items()}
    try:
        save_file(arrays, str(path), metadata=dict(metadata or {"format": "pt"}))
    except (SafetensorError, ValueError, TypeError) as exc:
        raise CheckpointError(f"cannot write {path}: {exc}") from None
    return path


def write_checkpoint(
    directory: str | Path, tensors: dict[str, np.ndarray], max_shard_bytes: int = 4 << 30
) -> list[Path]:
    """Write ``tensors`` as ``model.safetensors``, or as shards plus
    ``model.safetensors.index.json`` when they exceed ``max_shard_bytes``.

    Returns the files written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    total = sum(np.asarray(t).nbytes for t in tensors.values())
    if total <= max_shard_bytes:
        return [write_safetensors(directory / _SINGLE_NAME, tensors)]
    shards: list[dict] = [{}]
    size = 0
    for name in sorted(tensors):
        nbytes = np.asarray(tensors[name]).nbytes
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensors[name]
        size += nbytes
    written, weight_map = [], {}
    for i, shard in enumerate(shards):
        shard_name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        written.append(write_safetensors(directory / shard_name, shard))
        weight_map.update({name: shard_name for name in shard})
    index = directory / _INDEX_NAME
    index.write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2, sort_keys=True)
    )
    return written + [index]

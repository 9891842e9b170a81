"""Reading and writing Hugging Face checkpoints in the safetensors format, without torch.

Why not ``safetensors.numpy``: it cannot represent bfloat16 (numpy has no such dtype), and
real checkpoints (``llava-hf/*``) are stored in bfloat16 or float16. The format is small
and fully specified (https://huggingface.co/docs/safetensors): an 8-byte little-endian
header length, a JSON header mapping each tensor name to ``dtype``, ``shape`` and
``data_offsets`` (relative to the end of the header), then the raw row-major bytes. This
module reads tensors as memory-mapped numpy views (bfloat16 through ``ml_dtypes``), so a
7B checkpoint is not copied into memory twice, and writes files that ``safetensors`` and
transformers load.

Only safetensors are accepted: pickled ``.bin``/``.pt`` checkpoints are refused, because
unpickling runs arbitrary code from the file.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import ml_dtypes
import numpy as np

__all__ = ["CheckpointError", "read_checkpoint", "read_safetensors", "write_checkpoint", "write_safetensors"]

#: safetensors dtype names <-> numpy dtypes (the ones a VLM checkpoint uses).
_DTYPES = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_INDEX_NAME = "model.safetensors.index.json"
_SINGLE_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint directory or file is missing, malformed, or does not fit the model."""


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """All tensors of one ``.safetensors`` file as read-only, memory-mapped numpy arrays.

    Returns:
        ``{name: array}`` in the file's dtypes (bfloat16 as ``ml_dtypes.bfloat16``).

    Raises:
        CheckpointError: the file is truncated, its header is not valid JSON, a tensor has
            an unknown dtype, or its byte range does not match its shape.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise CheckpointError(f"{path}: too short to be a safetensors file")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise CheckpointError(f"{path}: header length {header_len} exceeds the file size {size}")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: header is not a JSON object")
    header.pop("__metadata__", None)
    data_start = 8 + header_len
    if not header:
        return {}
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start, shape=(size - data_start,))
    tensors = {}
    for name, info in header.items():
        try:
            dtype = _DTYPES[info["dtype"]]
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: tensor {name!r} has an unsupported or malformed entry {info!r}") from None
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end - begin != nbytes or begin < 0 or end > raw.shape[0]:
            raise CheckpointError(
                f"{path}: tensor {name!r} byte range [{begin}, {end}) does not hold shape {shape} of {info['dtype']}"
            )
        tensors[name] = raw[begin:end].view(dtype).reshape(shape)
    return tensors


def read_checkpoint(directory: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a Hugging Face model directory: one ``model.safetensors`` or a sharded
    ``model.safetensors.index.json`` with its shards.

    Raises:
        FileNotFoundError: ``directory`` does not exist.
        CheckpointError: no safetensors weights (pickled ``.bin``/``.pt`` files are refused
            with the reason), a shard named by the index is missing, a tensor appears in
            two shards, or the index's ``weight_map`` disagrees with the shards.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {directory}")
    index = directory / _INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{index}: not a safetensors index ({exc!r})") from None
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
    """Write ``tensors`` to one ``.safetensors`` file (names sorted, 8-byte aligned header).

    Raises:
        CheckpointError: a tensor's dtype has no safetensors name.
    """
    path = Path(path)
    header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    arrays = []
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        if array.dtype not in _NAMES:
            raise CheckpointError(f"tensor {name!r} has dtype {array.dtype}, which safetensors cannot store")
        header[name] = {
            "dtype": _NAMES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
        arrays.append(array)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for array in arrays:
            f.write(array.tobytes())
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

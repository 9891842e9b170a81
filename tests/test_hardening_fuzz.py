"""Issue 12: fuzzing the readers of config.json, focus_config.json, trace metadata and
safetensors headers. Whatever the file holds, the outcome is a loaded object or an
``InputError``, never another exception.

Inputs are the embedded demo model's real files with one entry replaced by an arbitrary
JSON value (or deleted), plus wholly arbitrary JSON documents; bounded example counts.
"""

import json
import shutil
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hardening import _small_trace

from focus_jax import FocusTrace
from focus_jax.config import FocusConfig
from focus_jax.demo_model import demo_model_dir
from focus_jax.errors import InputError
from focus_jax.models.llava_onevision import params as llava_params
from focus_jax.models.safetensors_io import read_safetensors

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, -1, 2**31, 10**12, 0.5, 1e308, "", "qwen2", "llava_onevision", "default", "[/]"]),
    st.text(max_size=8),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


def _paths(d, prefix=()):
    """Every key path of a nested dict."""
    for k, v in d.items():
        yield prefix + (k,)
        if isinstance(v, dict):
            yield from _paths(v, prefix + (k,))


def mutations(document: dict):
    """``document`` with one entry (at any depth) replaced by an arbitrary value or deleted."""
    paths = sorted(_paths(document))

    def apply(path, value, delete):
        d = json.loads(json.dumps(document))
        parent = d
        for k in path[:-1]:
            parent = parent[k]
        if delete:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        return d

    return st.builds(apply, st.sampled_from(paths), json_values, st.booleans())


def _write(path, document) -> None:
    path.write_text(json.dumps(document))


CONFIG = json.loads((demo_model_dir() / "config.json").read_text())
FOCUS = json.loads((demo_model_dir() / "focus_config.json").read_text())


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fuzz")
    shutil.copy(demo_model_dir() / "config.json", directory / "config.json")
    return directory


@FUZZ
@given(st.one_of(mutations(CONFIG), json_values))
def test_config_json(work, document):
    _write(work / "config.json", document)
    try:
        cfg = llava_params.read_config(work)
    except InputError:
        return
    assert cfg.text.num_layers >= 1 and cfg.vision.num_heads >= 1


@FUZZ
@given(st.one_of(mutations(FOCUS), json_values))
def test_focus_config_json(work, document):
    _write(work / "focus_config.json", document)
    try:
        FocusConfig.load(work / "focus_config.json")
    except InputError:
        pass


@pytest.fixture(scope="module")
def trace_arrays(tmp_path_factory):
    path = _small_trace(n_layers=2).save(tmp_path_factory.mktemp("trace") / "t.npz")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _trace_meta() -> dict:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = _small_trace(n_layers=2).save(Path(tmp) / "t.npz")
        with np.load(path) as data:
            return json.loads(str(data["__meta__"]))


@FUZZ
@given(st.one_of(mutations(_trace_meta()), json_values))
def test_trace_metadata(work, trace_arrays, meta):
    path = work / "trace.npz"
    with open(path, "wb") as f:
        np.savez_compressed(f, **(trace_arrays | {"__meta__": np.array(json.dumps(meta))}))
    try:
        trace = FocusTrace.load(path)
    except InputError:
        return
    assert 0 <= trace.work_fraction() <= 1.0 + 1e-9


def _safetensors_header() -> dict:
    raw = (demo_model_dir() / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    keep = sorted(k for k in header if k != "__metadata__")[:3]  # a small file: three tensors
    out, offset = {}, 0
    for k in keep:
        begin, end = header[k]["data_offsets"]
        out[k] = header[k] | {"data_offsets": [offset, offset + end - begin]}
        offset += end - begin
    return out


SAFETENSORS = _safetensors_header()
DATA_BYTES = max(v["data_offsets"][1] for v in SAFETENSORS.values())


@FUZZ
@given(st.one_of(mutations(SAFETENSORS), json_values), st.integers(0, 16))
def test_safetensors_header(work, header, extra_bytes):
    blob = json.dumps(header).encode()
    path = work / "fuzz.safetensors"
    path.write_bytes(
        struct.pack("<Q", len(blob)) + blob + np.ones(DATA_BYTES // 4, np.float32).tobytes() + b"\0" * extra_bytes
    )
    try:
        tensors = read_safetensors(path)
    except InputError:
        return
    assert all(isinstance(v, np.ndarray) for v in tensors.values())

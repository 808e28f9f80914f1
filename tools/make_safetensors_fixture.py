#!/usr/bin/env python3
"""Writes the safetensors fixtures that tests/cpu/test_safetensors.cpp checks Kestrel against,
using the reference implementation (the `safetensors` package, 0.8.0, with numpy).

    python3 -m venv /tmp/st && /tmp/st/bin/pip install safetensors==0.8.0 numpy
    /tmp/st/bin/python tools/make_safetensors_fixture.py tests/data

Every value is a closed form of its index (below), so the C++ test recomputes them instead of
trusting this script's output; the script prints them too.

reference.safetensors: one tensor of each dtype Kestrel supports, a 0-d tensor and an empty one,
and two metadata entries. The reference writer emits "__metadata__" keys in Rust HashMap order,
which is random per process; Kestrel writes them sorted. So that a deterministic writer can be
compared byte for byte, the script re-serializes until the reference's output has them sorted
(each try has a 1/2 chance) and checks that it did.

escaping.safetensors: a tensor name and a metadata value that need JSON escaping (quote,
newline, a control character, non-ASCII, a slash).
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np
import safetensors
from safetensors import TensorSpec, serialize


def tensors():
    i = np.arange
    conv = ((i(24, dtype=np.float32) - 10) * 0.25).reshape(2, 3, 2, 2)
    stats = i(3, dtype=np.float64) * 0.1 - 1.0
    # BF16 has no numpy dtype: store the top 16 bits of float32 values that bf16 holds exactly.
    bf16_values = (-2.5 + 0.75 * i(5, dtype=np.float32)).astype(np.float32)
    bf16_bits = (bf16_values.view(np.uint32) >> 16).astype(np.uint16)
    half = (i(6, dtype=np.float16) * np.float16(0.5) - np.float16(1)).reshape(3, 2)
    labels = ((i(4, dtype=np.int32) - 2) * 1000).reshape(2, 2)
    image = (i(12, dtype=np.uint8) * 21).reshape(3, 4)
    step = np.array(12345678901, dtype=np.int64)  # 0-d
    empty = np.zeros((0, 4), dtype=np.float32)
    arrays = {
        "conv.weight": ("float32", conv),
        "bn.stats": ("float64", stats),
        "bf16.weight": ("bfloat16", bf16_bits),
        "half.bias": ("float16", half),
        "labels": ("int32", labels),
        "image": ("uint8", image),
        "step": ("int64", step),
        "empty": ("float32", empty),
    }
    return arrays


def specs(arrays):
    return {
        name: TensorSpec(dtype=dtype, shape=list(a.shape), data_ptr=a.ctypes.data, data_len=a.nbytes)
        for name, (dtype, a) in arrays.items()
    }


def metadata_keys(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    header = blob[8:8 + n].decode()
    return list(json.loads(header)["__metadata__"].keys())


def main(out_dir):
    assert sys.byteorder == "little"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = tensors()
    metadata = {"format": "pt", "producer": "kestrel tools/make_safetensors_fixture.py"}
    for attempt in range(64):
        blob = serialize(specs(arrays), metadata=metadata)
        if metadata_keys(blob) == sorted(metadata):
            break
    else:
        raise SystemExit("the reference never wrote the metadata keys in sorted order")
    (out / "reference.safetensors").write_bytes(blob)

    odd = np.array([7], dtype=np.uint8)
    blob2 = serialize(specs({'we"ird\nname\u00e9/': ("uint8", odd)}),
                      metadata={"note": "tab\there\u0001 caf\u00e9 \\ /"})
    (out / "escaping.safetensors").write_bytes(blob2)

    print(f"safetensors {safetensors.__version__}: wrote {len(blob)} + {len(blob2)} bytes "
          f"(reference: {attempt + 1} tries)")
    for name, (dtype, a) in arrays.items():
        print(f"  {name}: {dtype} {list(a.shape)} {a.ravel().tolist()}")
    n = struct.unpack("<Q", blob[:8])[0]
    print("  header:", blob[8:8 + n].decode())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data")

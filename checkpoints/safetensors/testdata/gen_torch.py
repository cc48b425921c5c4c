"""Writes torch_reference.safetensors: the same float32 values stored by
PyTorch as F32, F16 and BF16 (torch's own rounding), in a file laid out by
hand from the safetensors specification (8-byte little-endian header
length, JSON header, raw little-endian data).

Run with Debian's python3-torch:  /usr/bin/python3 testdata/gen_torch.py
"""
import json
import struct

import torch

g = torch.Generator().manual_seed(7)
values = torch.cat([
    torch.randn(200, generator=g) * 3,
    torch.randn(50, generator=g) * 1e-5,          # half subnormals
    torch.tensor([0.0, -0.0, 1.0, 1 / 3, 0.1, 65504.0, 65519.0, 65520.0, 1e10,
                  2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26, float("inf"), float("-inf")]),
]).to(torch.float32)

tensors = [
    ("values.f32", values, "F32"),
    ("values.f16", values.to(torch.float16), "F16"),
    ("values.bf16", values.to(torch.bfloat16), "BF16"),
]
header, data, off = {"__metadata__": {"format": "pt"}}, b"", 0
for name, t, dtype in tensors:
    if t.dtype == torch.bfloat16:
        raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
    else:
        raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
    header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
    data += raw
    off += len(raw)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open("testdata/torch_reference.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + data)

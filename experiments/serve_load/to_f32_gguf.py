"""Writes an F32 GGUF from a quantized one: every tensor dequantized with gguf.quants, every
metadata field copied except general.file_type, which becomes 0 (ALL_F32).

Usage: python to_f32_gguf.py IN.gguf OUT.gguf
"""

import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter, GGMLQuantizationType
from gguf.quants import dequantize

src, dst = sys.argv[1], sys.argv[2]
reader = GGUFReader(src)
arch = reader.fields["general.architecture"]
arch = bytes(arch.parts[arch.data[0]]).decode()
writer = GGUFWriter(dst, arch)
for name, field in reader.fields.items():
    if name.startswith("GGUF.") or name == "general.architecture":
        continue
    if name == "general.file_type":
        writer.add_uint32(name, 0)
        continue
    kind = field.types[0]
    if kind == GGUFValueType.STRING:
        writer.add_string(name, bytes(field.parts[field.data[0]]).decode())
    elif kind == GGUFValueType.ARRAY:
        sub = field.types[1]
        if sub == GGUFValueType.STRING:
            values = [bytes(field.parts[i]).decode() for i in field.data]
        else:
            values = [field.parts[i].tolist()[0] for i in field.data]
        writer.add_array(name, values)
    else:
        writer.add_key_value(name, field.parts[field.data[0]].tolist()[0], kind)
for t in reader.tensors:
    data = dequantize(t.data, t.tensor_type).astype(np.float32)
    # GGUF stores shapes innermost-first; numpy wants them outermost-first.
    shape = tuple(int(d) for d in reversed(t.shape.tolist()))
    writer.add_tensor(t.name, data.reshape(shape), raw_dtype=GGMLQuantizationType.F32)
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()
print(f"{dst}: {len(reader.tensors)} tensors in F32")

"""Makes the weight-file fixtures that src/weights/tests.rs reads.

Run from the repository root:

    /work/.venv-fixtures/bin/python tests/data/weights/make_weights.py

It writes, next to itself:

- state.safetensors        the reference state dict (contiguous copies), safetensors
- state_zip.bin            the same dict, torch.save (zip format, pickle protocol 2, the default)
- state_zip_p5.bin         the same, pickle protocol 5 (FRAME, MEMOIZE, STACK_GLOBAL, ...)
- state_legacy.bin         the same, torch.save(_use_new_zipfile_serialization=False)
- state_zip_deflate.bin    state_zip.bin re-packed with deflate-compressed entries
- state_zip_bigendian.bin  a small dict in a zip archive whose byteorder record says "big"
- state.json               names, dtypes, shapes, values, storage sharing
- evil_*.bin / evil_*.pkl  hostile files that must be refused without running anything
- bomb_repeat.pkl          a "billion laughs" pickle (memo references)

Nothing here ever unpickles the hostile files. The payloads would only create
/tmp/tolk-weights-pwned, which the Rust tests check does not appear.
"""

import io
import json
import os
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
PWNED = "/tmp/tolk-weights-pwned"


def state_dict():
    g = torch.Generator().manual_seed(1234)
    sd = OrderedDict()
    sd["f32"] = (torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.5 - 1.25)
    sd["f16"] = torch.tensor([0.5, -1.0, 65504.0, 6.1e-05, 0.0, -0.0], dtype=torch.float16)
    sd["bf16"] = torch.tensor([[1.5, -2.0], [3.0e38, 1.0e-3]], dtype=torch.bfloat16)
    sd["f64"] = torch.tensor([1.0 / 3.0, -2.5e-300, 1e300], dtype=torch.float64)
    sd["i64"] = torch.tensor([0, -5, 2**40, -(2**62)], dtype=torch.int64)
    sd["i32"] = torch.tensor([[7, -8], [2**31 - 1, -(2**31)]], dtype=torch.int32)
    sd["i16"] = torch.tensor([-32768, 32767, 1], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127, 0, -1], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True], dtype=torch.bool)
    # A view that starts 5 elements into its storage.
    base = torch.arange(20, dtype=torch.float32) * 1.5
    sd["offset_view"] = base[5:11].view(2, 3)
    # A strided slice: offset 5, strides (5, 2).
    m = torch.arange(20, dtype=torch.float32).reshape(4, 5)
    sd["strided"] = m[1:3, ::2]
    # Transposed: strides (1, 3).
    sd["transposed"] = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()
    # Tied weights: the same tensor object twice, and a second tensor object on the same storage.
    shared = torch.randn(5, 3, generator=g)
    sd["tied.a"] = shared
    sd["tied.b"] = shared
    sd["tied.c"] = shared.detach()
    sd["param"] = torch.nn.Parameter(torch.tensor([1.5, -2.5]), requires_grad=True)
    sd["scalar"] = torch.tensor(3.25)
    sd["empty"] = torch.zeros(0, 4)
    sd._metadata = OrderedDict([("", {"version": 1}), ("layer", {"version": 2})])
    return sd


def expected_json(sd):
    storages = {}
    out = {"tensors": {}, "shared_storages": []}
    for name, t in sd.items():
        t = t.detach()
        values = t.reshape(-1).tolist()
        if t.dtype == torch.bool:
            values = [int(v) for v in values]
        out["tensors"][name] = {
            "dtype": str(t.dtype).replace("torch.", ""),
            "shape": list(t.shape),
            "values": values,
            "storage_offset": t.storage_offset(),
            "contiguous": t.is_contiguous(),
        }
        storages.setdefault(t.untyped_storage().data_ptr(), []).append(name)
    out["shared_storages"] = sorted(v for v in storages.values() if len(v) > 1)
    return out


def write_zip_copy(src, dst, compression=zipfile.ZIP_STORED, replace=None):
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for item in zin.infolist():
            data = replace.get(item.filename, zin.read(item.filename))
            if data is None:
                continue
            zout.writestr(item.filename, data, compress_type=compression)
        for name, data in replace.items():
            if name not in zin.namelist() and data is not None:
                zout.writestr(name, data, compress_type=compression)


def archive_prefix(path):
    with zipfile.ZipFile(path) as z:
        return next(n for n in z.namelist() if n.endswith("/data.pkl")).rsplit("/", 1)[0]


def legacy_header():
    sys_info = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    return (
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps(sys_info, protocol=2)
    )


class EvilReduce:
    """Its pickle calls os.system when unpickled."""

    def __reduce__(self):
        return (os.system, ("touch " + PWNED,))


class EvilInstance:
    """A plain custom class: unpickling it imports an arbitrary module."""

    def __init__(self):
        self.payload = "touch " + PWNED


def hand_pickle(*parts):
    return b"".join(parts)


def bin_unicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def main():
    sd = state_dict()
    (HERE / "state.json").write_text(json.dumps(expected_json(sd), indent=1) + "\n")

    torch.save(sd, HERE / "state_zip.bin")
    torch.save(sd, HERE / "state_zip_p5.bin", pickle_protocol=5)
    torch.save(sd, HERE / "state_legacy.bin", _use_new_zipfile_serialization=False)
    write_zip_copy(HERE / "state_zip.bin", HERE / "state_zip_deflate.bin", zipfile.ZIP_DEFLATED)
    save_file(
        {k: v.detach().contiguous().clone() for k, v in sd.items()},
        HERE / "state.safetensors",
        metadata={"format": "pt"},
    )

    # Big-endian: one storage per tensor, every element byte-swapped, byteorder record "big".
    be = OrderedDict(
        [
            ("f32", torch.tensor([1.0, -2.5, 3.0e10])),
            ("i64", torch.tensor([1, -2, 2**40])),
            ("f16", torch.tensor([0.5, -3.0], dtype=torch.float16)),
        ]
    )
    buf = io.BytesIO()
    torch.save(be, buf)
    buf.seek(0)
    tmp = HERE / "_tmp_be.bin"
    tmp.write_bytes(buf.getvalue())
    prefix = archive_prefix(tmp)
    with zipfile.ZipFile(tmp) as z:
        names = z.namelist()
    # Storage keys follow the order the tensors were pickled in.
    swapped = {}
    for key, t in enumerate(be.values()):
        raw = t.numpy().byteswap().tobytes()
        swapped[f"{prefix}/data/{key}"] = raw
    assert all(k in names for k in swapped), names
    swapped[f"{prefix}/byteorder"] = b"big"
    write_zip_copy(tmp, HERE / "state_zip_bigendian.bin", replace=swapped)
    tmp.unlink()
    (HERE / "state_bigendian.json").write_text(
        json.dumps({k: {"shape": list(v.shape), "values": v.tolist()} for k, v in be.items()}, indent=1)
        + "\n"
    )

    # ---- hostile files -------------------------------------------------------------------------
    prefix = archive_prefix(HERE / "state_zip.bin")

    # A bare protocol-2 pickle whose __reduce__ calls os.system (GLOBAL posix.system + REDUCE).
    (HERE / "evil_reduce_os_system.pkl").write_bytes(pickle.dumps(EvilReduce(), protocol=2))
    # A custom class instance (GLOBAL __main__.EvilInstance + NEWOBJ), protocol 4.
    (HERE / "evil_instance.pkl").write_bytes(pickle.dumps(EvilInstance(), protocol=4))
    # builtins.exec, hand-assembled, as the main pickle of a legacy torch file.
    exec_pickle = hand_pickle(
        b"\x80\x02",
        b"c" + b"builtins\nexec\n",
        bin_unicode("import os; os.system('touch " + PWNED + "')"),
        b"\x85",  # TUPLE1
        b"R",  # REDUCE
        b".",
    )
    (HERE / "evil_exec_legacy.bin").write_bytes(legacy_header() + exec_pickle)
    # builtins.eval via STACK_GLOBAL, as the data.pkl of an otherwise good zip checkpoint.
    eval_pickle = hand_pickle(
        b"\x80\x04",
        b"\x8c\x08builtins",  # SHORT_BINUNICODE
        b"\x8c\x04eval",
        b"\x93",  # STACK_GLOBAL
        b"\x8c" + bytes([len("__import__('os').system('touch " + PWNED + "')")]),
        ("__import__('os').system('touch " + PWNED + "')").encode(),
        b"\x85R.",
    )
    write_zip_copy(
        HERE / "state_zip.bin", HERE / "evil_eval_zip.bin", replace={f"{prefix}/data.pkl": eval_pickle}
    )
    # A zip checkpoint whose data.pkl refers to storage "0" after that record was removed.
    write_zip_copy(
        HERE / "state_zip.bin", HERE / "evil_missing_storage_zip.bin", replace={f"{prefix}/data/0": None}
    )
    # A zip checkpoint whose storage "0" record is shorter than its tensors need.
    with zipfile.ZipFile(HERE / "state_zip.bin") as z:
        short = z.read(f"{prefix}/data/0")[:3]
    write_zip_copy(
        HERE / "state_zip.bin", HERE / "evil_short_storage_zip.bin", replace={f"{prefix}/data/0": short}
    )

    # ---- resource bombs ------------------------------------------------------------------------
    # "Billion laughs": 30 levels of lists that each hold the previous one 10 times (memo refs).
    # (Simpler bombs -- nested MARKs, deep tuples, huge lengths -- are built in the Rust tests.)
    x = ["lol"]
    for _ in range(30):
        x = [x] * 10
    (HERE / "bomb_repeat.pkl").write_bytes(pickle.dumps(x, protocol=2))

    print(
        "torch",
        torch.__version__,
        "python",
        sys.version.split()[0],
        "pickle protocols",
        pickle.HIGHEST_PROTOCOL,
    )


if __name__ == "__main__":
    main()

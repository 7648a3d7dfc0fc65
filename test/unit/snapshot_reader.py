"""Reads a paramtrail snapshot with pyarrow alone and checks it against expectations.

Called by test/unit/snapshot.python.test.ts to prove the files are plain Arrow that another language
can use without paramtrail:

    python snapshot_reader.py SNAPSHOT.arrow EXPECTED.json

EXPECTED.json: {"run_id", "epoch", "step", "kind", "format_version",
                "tensors": [{"layer", "name", "shape", "values_hex", "sha256"}]}
where values_hex is the tensor's little-endian float32 bytes in hex (exact, NaN included).

Exits 0 when everything matches, else 1 with one line per mismatch on stderr.
"""
import hashlib
import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc


def main(path: str, expected_path: str) -> list[str]:
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    problems: list[str] = []

    def check(what: str, want, got) -> None:
        if want != got:
            problems.append(f"{what}: expected {want!r}, found {got!r}")

    with pa.memory_map(path, "r") as source:
        table = ipc.open_file(source).read_all()

    check(
        "schema",
        [("layer", pa.utf8()), ("name", pa.utf8()), ("shape", pa.list_(pa.int32())), ("values", pa.list_(pa.float32()))],
        [(f.name, pa.list_(f.type.value_type) if pa.types.is_list(f.type) else f.type) for f in table.schema],
    )
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    check("paramtrail.format_version", str(expected["format_version"]), meta.get("paramtrail.format_version"))
    check("paramtrail.run_id", expected["run_id"], meta.get("paramtrail.run_id"))
    check("paramtrail.epoch", str(expected["epoch"]), meta.get("paramtrail.epoch"))
    check("paramtrail.step", str(expected["step"]), meta.get("paramtrail.step"))
    check("paramtrail.kind", expected["kind"], meta.get("paramtrail.kind"))
    listed = json.loads(meta.get("paramtrail.tensors", "[]"))

    want_tensors = expected["tensors"]
    check("number of tensors", len(want_tensors), table.num_rows)
    check("number of tensors listed in metadata", len(want_tensors), len(listed))
    if problems:
        return problems

    layers = table.column("layer").to_pylist()
    names = table.column("name").to_pylist()
    shapes = table.column("shape").to_pylist()
    values = table.column("values").combine_chunks()
    for i, want in enumerate(want_tensors):
        at = f"tensor {i} ({want['layer']}/{want['name']})"
        check(f"{at} layer", want["layer"], layers[i])
        check(f"{at} name", want["name"], names[i])
        check(f"{at} shape", want["shape"], shapes[i])
        got = values[i].values.to_numpy(zero_copy_only=False).astype("<f4", copy=False)
        want_values = np.frombuffer(bytes.fromhex(want["values_hex"]), dtype="<f4")
        tensor = got.reshape(want["shape"])  # fails loudly if the element count does not fit the shape
        check(f"{at} element count", want_values.size, tensor.size)
        if got.shape == want_values.shape and not np.array_equal(got.view("<u4"), want_values.view("<u4")):
            bad = int(np.flatnonzero(got.view("<u4") != want_values.view("<u4"))[0])
            problems.append(f"{at} values: first difference at index {bad}: expected {want_values[bad]!r}, found {got[bad]!r}")
        digest = hashlib.sha256(got.tobytes()).hexdigest()
        check(f"{at} sha256 recomputed with hashlib", want["sha256"], digest)
        check(f"{at} sha256 in paramtrail.tensors", want["sha256"], listed[i].get("sha256"))
        check(f"{at} name in paramtrail.tensors", [want["layer"], want["name"]], [listed[i].get("layer"), listed[i].get("name")])
    return problems


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: snapshot_reader.py SNAPSHOT.arrow EXPECTED.json", file=sys.stderr)
        sys.exit(2)
    found = main(sys.argv[1], sys.argv[2])
    for line in found:
        print(line, file=sys.stderr)
    if found:
        sys.exit(1)
    print(f"ok: {sys.argv[1]} matches {sys.argv[2]}")

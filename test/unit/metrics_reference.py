"""Independent numpy implementations of paramtrail's weight and feature metrics (ml/metrics).

Called by test/unit/metrics-reference.test.ts, which writes random inputs and compares its own
results with these:

    python metrics_reference.py INPUT_DIR

INPUT_DIR/manifest.json names raw little-endian float32 files in INPUT_DIR and the parameters:
  {"snapshots": {"layers": [{"layer", "tensors": [{"name", "reference", "current"}]}],
                 "ps": [1, 2, 3, "inf"], "atol", "rtol"},
   "features": {"x": {"file", "rows", "cols"}, "y": {...}, "bins": [edges]},
   "aggregate": {"rows": [{"run", "depth", "layers", "value"}], "grid": [positions]}}

Prints one JSON object on stdout; NaN is written as null (JSON has no NaN).

The formulas are deliberately not those of the TypeScript code: norms come from numpy.linalg.norm,
correlations from numpy.corrcoef, CKA from the n x n centred-kernel form tr(K H L H) of Kornblith
et al. (the TypeScript uses the d x d feature form), interpolation from numpy.interp.
"""
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np


def load(folder: Path, name: str) -> np.ndarray:
    return np.fromfile(folder / name, dtype="<f4")


def clean(value):
    """Turns NaN into None recursively, for JSON."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    return value


def order(p):
    return np.inf if p == "inf" else float(p)


def snapshots(folder: Path, spec: dict) -> dict:
    layers = []
    for layer in spec["layers"]:
        ref = np.concatenate([load(folder, t["reference"]) for t in layer["tensors"]]).astype(np.float64)
        cur = np.concatenate([load(folder, t["current"]) for t in layer["tensors"]]).astype(np.float64)
        layers.append((layer["layer"], ref, cur))
    whole_ref = np.concatenate([r for _, r, _ in layers])
    whole_cur = np.concatenate([c for _, _, c in layers])
    rows = [(name, r, c) for name, r, c in layers] + [("__model__", whole_ref, whole_cur)]

    changes = {}
    for p in spec["ps"]:
        out = []
        for name, r, c in rows:
            distance = float(np.linalg.norm(c - r, ord=order(p)))
            ref_norm = float(np.linalg.norm(r, ord=order(p)))
            out.append({"layer": name, "params": int(r.size), "distance": distance,
                        "meanDistance": distance / r.size, "referenceNorm": ref_norm,
                        "relative": distance / ref_norm,
                        "currentNorm": float(np.linalg.norm(c, ord=order(p)))})
        changes[str(p)] = out

    atol, rtol = spec["atol"], spec["rtol"]
    share = []
    for name, r, c in rows:
        changed = int(np.count_nonzero(np.abs(c - r) > atol + rtol * np.abs(r)))
        share.append({"layer": name, "changed": changed, "fraction": changed / r.size})
    return {"changes": changes, "share": share}


def features(folder: Path, spec: dict) -> dict:
    def matrix(m):
        return load(folder, m["file"]).astype(np.float64).reshape(m["rows"], m["cols"])

    x, y = matrix(spec["x"]), matrix(spec["y"])
    with warnings.catch_warnings():
        # Constant features divide by zero on purpose: their correlations are NaN.
        warnings.simplefilter("ignore", RuntimeWarning)
        pearson = np.corrcoef(x, rowvar=False)
        both = np.corrcoef(np.hstack([x, y]), rowvar=False)
    cross = both[: x.shape[1], x.shape[1]:]

    upper = pearson[np.triu_indices(x.shape[1], k=1)]
    defined = upper[~np.isnan(upper)]
    counts, _ = np.histogram(defined, bins=np.asarray(spec["bins"]))

    n = x.shape[0]
    h = np.eye(n) - np.full((n, n), 1.0 / n)

    def hsic(k, l):
        return float(np.trace(k @ h @ l @ h))

    # Kernels of the column-centred features: mathematically H K H is the same either way, but
    # centring first keeps a feature with a large mean (column 9 of the test) from cancelling away
    # digits in the n x n products.
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    kx, ky = xc @ xc.T, yc @ yc.T
    cka = hsic(kx, ky) / math.sqrt(hsic(kx, kx) * hsic(ky, ky))
    return {
        "pearson": pearson.ravel().tolist(),
        "cross": cross.ravel().tolist(),
        "meanAbs": float(np.abs(defined).mean()),
        "pairs": int(defined.size),
        "undefinedPairs": int(upper.size - defined.size),
        "counts": counts.tolist(),
        "cka": cka,
    }


def aggregate(spec: dict) -> list:
    grid = np.asarray(spec["grid"], dtype=np.float64)
    runs = {}
    for row in spec["rows"]:
        runs.setdefault(row["run"], []).append(row)
    curves = []
    for rows in runs.values():
        rows = sorted(rows, key=lambda r: r["depth"])
        t = np.array([r["depth"] / (r["layers"] - 1) for r in rows])
        v = np.array([r["value"] for r in rows], dtype=np.float64)
        curve = np.interp(grid, t, v)
        curve[(grid < t[0]) | (grid > t[-1])] = np.nan  # no extrapolation
        curves.append(curve)
    stacked = np.vstack(curves)
    out = []
    for g in range(grid.size):
        col = stacked[:, g]
        col = col[~np.isnan(col)]
        out.append({"position": float(grid[g]), "mean": float(col.mean()), "std": float(col.std(ddof=1)),
                    "min": float(col.min()), "max": float(col.max()), "runs": int(col.size)})
    return out


def main(folder: Path) -> dict:
    spec = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return {
        "snapshots": snapshots(folder, spec["snapshots"]),
        "features": features(folder, spec["features"]),
        "aggregate": aggregate(spec["aggregate"]),
    }


if __name__ == "__main__":
    print(json.dumps(clean(main(Path(sys.argv[1])))))

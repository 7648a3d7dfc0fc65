"""scikit-learn's DecisionTreeRegressor on the inputs of test/unit/forest-reference.test.ts, which
compares its own CART tree (ml/metrics/forest.ts) with this one node by node:

    python forest_reference.py INPUT_DIR

INPUT_DIR/manifest.json: {"x": {"file", "rows", "cols"}, "y": {"file", "outputs"}, "minSamplesLeaf"},
the files raw little-endian float32 (features) and float64 (targets). The tree is grown on every
feature at each split (max_features=None) without bootstrap, so it is deterministic up to ties between
equally good splits (in small nodes two features can isolate the same samples).

Prints one JSON object: the tree's arrays in sklearn's node order (preorder, left child first), and
per node the training rows that reach it.
"""
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.tree import DecisionTreeRegressor


def main() -> None:
    folder = Path(sys.argv[1])
    manifest = json.loads((folder / "manifest.json").read_text())
    x = np.fromfile(folder / manifest["x"]["file"], dtype="<f4").reshape(manifest["x"]["rows"], manifest["x"]["cols"])
    y = np.fromfile(folder / manifest["y"]["file"], dtype="<f8").reshape(manifest["x"]["rows"], manifest["y"]["outputs"])
    model = DecisionTreeRegressor(max_features=None, min_samples_leaf=manifest["minSamplesLeaf"], random_state=0)
    model.fit(x, y)
    tree = model.tree_
    paths = model.decision_path(x).tocsc()
    print(
        json.dumps(
            {
                "feature": [int(f) if f >= 0 else -1 for f in tree.feature],
                "threshold": [float(t) for t in tree.threshold],
                "left": [int(c) for c in tree.children_left],
                "right": [int(c) for c in tree.children_right],
                "count": [int(c) for c in tree.n_node_samples],
                "value": [float(v) for v in tree.value[:, :, 0].reshape(-1)],
                "rows": [sorted(int(r) for r in paths[:, v].indices) for v in range(tree.node_count)],
            }
        )
    )


if __name__ == "__main__":
    main()

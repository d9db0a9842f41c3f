"""Writes the scikit-learn 0.23.1 forest fixture of tests/estimator/test_nnmeter.py.

Run with scikit-learn 0.23.1 (Python 3.8), the version of nn-Meter's published predictors' era:
a RandomForestRegressor on nn-Meter's fc features [cin, cout, flops/2e6, params/1e6]::

    python3.8 -m venv /tmp/skl023 && /tmp/skl023/bin/pip install scikit-learn==0.23.1 \
        numpy==1.19.5 scipy==1.5.4 "joblib<1.2"
    /tmp/skl023/bin/python tests/estimator/data/make_sklearn0231_fixture.py \
        tests/estimator/data/sklearn0231_fc_forest
"""

import json
import pickle
import sys

import numpy as np
import sklearn
from sklearn.ensemble import RandomForestRegressor

out = sys.argv[1]
rng = np.random.RandomState(0)
rows = []
for cin in (64, 128, 256, 512, 1024, 1280, 1536):
    for cout in (10, 100, 1000):
        flop = (2 * cin + 1) * cout
        rows.append([cin, cout, flop / 2e6, flop / 1e6])
X = np.array(rows, dtype=float)
y = 0.002 + X[:, 2] * 0.8 + rng.uniform(0, 0.001, len(X))
m = RandomForestRegressor(n_estimators=6, max_depth=5, max_features=2, random_state=10).fit(X, y)
with open(out + ".pkl", "wb") as f:
    pickle.dump(m, f)
query = np.vstack([X, [[1280, 10, 0.012805, 0.02561], [300, 50, 0.030025, 0.06005]]])
with open(out + ".json", "w") as f:
    json.dump(
        {
            "scikit_learn": sklearn.__version__,
            "kernel": "fc",
            "X": query.tolist(),
            "predict": m.predict(query).tolist(),
        },
        f,
        indent=1,
    )

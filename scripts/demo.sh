#!/usr/bin/env bash
# The demo: a ProxylessNAS search on the embedded MNIST digits, then retraining of the found
# architecture from scratch. No network access. Outputs under log/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${DEMO_OUT:-log/demo}
start=$(date +%s)

echo "== 1/2 search: ProxylessNAS on the MobileNet space (embedded MNIST digits) -> $OUT/search"
$PY main.py --search -f examples/mnist_search.json -a ProxylessNasSearcher -o "$OUT/search" --overwrite "$@"

echo "== 2/2 retrain the found architecture from scratch -> $OUT/train"
$PY main.py -f examples/mnist_train.json -a Trainer -o "$OUT/train" --overwrite \
    --set "network.genotype=\"$OUT/search/arch.h5\"" "$@"

$PY - "$OUT" "$start" <<'PYEOF'
import json, sys, time
out, start = sys.argv[1], int(sys.argv[2])
search = json.load(open(f"{out}/search/results.json"))
train = json.load(open(f"{out}/train/results.json"))
print("\n== demo finished in %.1f min" % ((time.time() - start) / 60))
print("chosen architecture (choice: candidate, probability):")
for label, name in search["architecture"].items():
    prob = search.get("arch_probabilities", {}).get(label, {}).get(name)
    print(f"  {label:10s} {name:14s}" + (f" {prob:.3f}" if prob is not None else ""))
best = train["best"]
print(f"retrained: test accuracy {100 * (1 - train['final']['test_error']):.2f}% "
      f"(best validation epoch {best['epoch']}: test accuracy {100 * (1 - best['test_error']):.2f}%), "
      f"{train['num_parameters']} weights")
print(f"genotype:    {out}/search/arch.h5")
print(f"drawing:     {out}/search/arch.png")
print(f"weights:     {out}/train/weights.h5")
print(f"logs:        {out}/search/log.txt, {out}/train/log.txt")
print(f"tensorboard: tensorboard --logdir {out}")
PYEOF

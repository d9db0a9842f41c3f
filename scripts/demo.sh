#!/usr/bin/env bash
# The demo: a ProxylessNAS search on the embedded MNIST digits, the found architecture retrained
# from scratch, and two architectures drawn uniformly from the same space retrained with the
# same budget (the random baseline). No network access. Outputs under log/demo/.
#
# Both cores are used: the random baseline retrains while the search runs, then the searched
# architecture retrains. DEMO_RETRAIN_EPOCHS (default 8) is the retraining budget of all three;
# DEMO_RANDOM (default 2) the number of random architectures.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${DEMO_OUT:-log/demo}
EPOCHS=${DEMO_RETRAIN_EPOCHS:-8}
RANDOM_N=${DEMO_RANDOM:-2}
start=$(date +%s)
mkdir -p "$OUT"

retrain() {  # retrain GENOTYPE OUTPUT [extra args]
    local genotype=$1 out=$2
    shift 2
    $PY main.py -f examples/mnist_train.json -a Trainer -o "$out" --overwrite \
        --set "epoch=$EPOCHS" --set "network.genotype=\"$genotype\"" "$@"
}

echo "== 1/3 search: ProxylessNAS on the MobileNet space (embedded MNIST digits) -> $OUT/search"
echo "   (meanwhile, on the other core: $RANDOM_N random architectures retrained -> $OUT/random_*)"
$PY scripts/demo_random_arch.py examples/mnist_search.json "$OUT" "$RANDOM_N" 2>/dev/null
(
    for k in $(seq 1 "$RANDOM_N"); do
        retrain "$OUT/random_$k/arch.h5" "$OUT/random_$k/train" "$@" > "$OUT/random_$k.out" 2>&1
    done
) &
baseline=$!
$PY main.py --search -f examples/mnist_search.json -a ProxylessNasSearcher -o "$OUT/search" \
    --overwrite "$@"

echo "== 2/3 retrain the found architecture from scratch ($EPOCHS epochs) -> $OUT/train"
retrain "$OUT/search/arch.h5" "$OUT/train" "$@"

echo "== 3/3 waiting for the random baseline"
if ! wait "$baseline"; then
    echo "the random baseline failed: see $OUT/random_*.out" >&2
    exit 1
fi

$PY - "$OUT" "$start" "$RANDOM_N" <<'PYEOF'
import json, math, os, sys, time
out, start, n_random = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
search = json.load(open(f"{out}/search/results.json"))
train = json.load(open(f"{out}/train/results.json"))
probs = search["arch_probabilities"]
print("\n== demo finished in %.1f min (load average %.2f %.2f %.2f)"
      % ((time.time() - start) / 60, *os.getloadavg()))
print("chosen architecture (choice: candidate, probability; uniform would be 1/n):")
max_p, entropy = [], []
for label, name in search["architecture"].items():
    p = list(probs[label].values())
    max_p.append(max(p) * len(p))  # max probability relative to uniform
    entropy.append(-sum(q * math.log(q) for q in p if q > 0) / math.log(len(p)))
    print(f"  {label:10s} {name:14s} {probs[label][name]:.3f} (1/{len(p)} = {1 / len(p):.3f})")
print(f"probability movement: mean max-probability {sum(max_p) / len(max_p):.2f}x uniform, "
      f"mean normalised entropy {sum(entropy) / len(entropy):.3f} (uniform: 1.000)")
acc = lambda res: 100 * (1 - res["final"]["test_error"])  # noqa: E731
print(f"retrained ({train['epochs']} epochs, same budget for all):")
print(f"  searched:  test accuracy {acc(train):.2f}%, {train['num_parameters']} weights")
randoms = [json.load(open(f"{out}/random_{k}/train/results.json")) for k in range(1, n_random + 1)]
for k, res in enumerate(randoms, 1):
    print(f"  random {k}:  test accuracy {acc(res):.2f}%, {res['num_parameters']} weights")
if randoms:
    mean = sum(acc(r) for r in randoms) / len(randoms)
    print(f"  searched - mean of random: {acc(train) - mean:+.2f} points")
print(f"genotype:    {out}/search/arch.h5")
print(f"drawing:     {out}/search/arch.png")
print(f"weights:     {out}/train/weights.h5")
print(f"logs:        {out}/search/log.txt, {out}/train/log.txt, {out}/random_*.out")
print(f"tensorboard: tensorboard --logdir {out}")
PYEOF

#!/usr/bin/env bash
# The command lines of every example. Run one at a time; outputs go to log/.

# --- MobileNet search space on CIFAR-10 (ProxylessNAS), the seed tutorial ---------------------
# search (many hours on a GPU)
python main.py -d 0 --search -f examples/mobilenet_cifar10_search.json -a ProxylessNasSearcher -o log/mobilenet/cifar10/search
# retrain the found architecture (reads log/mobilenet/cifar10/search/arch.h5)
python main.py -d 0 -f examples/mobilenet_cifar10_train.json -a Trainer -o log/mobilenet/cifar10/train
# the MobileNetV2 reference
python main.py -d 1 -f examples/mobilenet_cifar10_reference.json -a Trainer -o log/mobilenet/cifar10/reference

# --- MNIST (embedded digits, runs on a CPU in minutes) -----------------------------------------
python main.py -f examples/mnist_reference.json -a Trainer -o log/mnist/reference
python main.py --search -f examples/mnist_search.json -a ProxylessNasSearcher -o log/mnist/search
python main.py -f examples/mnist_train.json -a Trainer -o log/mnist/train

# --- DARTS cells on CIFAR-10 (DARTS, second order) ----------------------------------------------
python main.py -d 0 --search -f examples/darts_search.json -a DartsSearcher -o log/darts/cifar10/search
# retrain the derived cells, 20 cells of 36 channels (reads log/darts/cifar10/search/arch.json)
python main.py -d 0 -f examples/darts_train.json -a Trainer -o log/darts/cifar10/train

# --- the same supernet searched by path sampling (pnas, ProxylessNAS) ---------------------------
python main.py -d 0 --search -f examples/pnas_search.json -a ProxylessNasSearcher -o log/pnas/cifar10/search
# retrain every edge's chosen op (reads log/pnas/cifar10/search/arch.h5)
python main.py -d 0 -f examples/pnas_train.json -a Trainer -o log/pnas/cifar10/train

# --- DARTS and pnas on MNIST (embedded digits, a few minutes each on a CPU) ---------------------
python main.py --search -f examples/darts_mnist_search.json -a DartsSearcher -o log/darts/mnist/search
python main.py -f examples/darts_mnist_train.json -a Trainer -o log/darts/mnist/train
python main.py --search -f examples/pnas_mnist_search.json -a ProxylessNasSearcher -o log/pnas/mnist/search
python main.py -f examples/pnas_mnist_train.json -a Trainer -o log/pnas/mnist/train

# --- The one-shot zoph space (Bender et al. 2018) on CIFAR-10: ProxylessNAS or DARTS ----------
python main.py -d 0 --search -f examples/zoph_cifar10_search.json -a ProxylessNasSearcher -o log/zoph/cifar10/search
python main.py -d 0 --search -f examples/zoph_cifar10_darts_search.json -a DartsSearcher -o log/zoph/cifar10/darts_search
# retrain the found architecture (reads log/zoph/cifar10/search/arch.h5 through param_path)
python main.py -d 0 -f examples/zoph_cifar10_train.json -a Trainer -o log/zoph/cifar10/train
# a random architecture, cells merged by addition (its arch.h5 is written in the output folder)
python main.py -d 0 -f examples/zoph_cifar10_random.json -a Trainer -o log/zoph/cifar10/random

# --- zoph on MNIST (embedded digits, a few minutes each on a CPU) ------------------------------
python main.py --search -f examples/zoph_mnist_search.json -a ProxylessNasSearcher -o log/zoph/mnist/search
python main.py -f examples/zoph_mnist_train.json -a Trainer -o log/zoph/mnist/train
python main.py --search -f examples/zoph_mnist_darts_search.json -a DartsSearcher -o log/zoph/mnist/darts_search
python main.py -f examples/zoph_mnist_random.json -a Trainer -o log/zoph/mnist/random

# --- Randomly wired networks (Xie et al. 2019): trained, then retrained from their graphs -------
python main.py -f examples/random_wired_mnist_train.json -a Trainer -o log/random_wired/mnist/train
python main.py -f examples/random_wired_mnist_retrain.json -a Trainer -o log/random_wired/mnist/retrain
python main.py -d 0 -f examples/random_wired_cifar10_train.json -a Trainer -o log/random_wired/cifar10/train
python main.py -d 0 -f examples/random_wired_cifar10_retrain.json -a Trainer -o log/random_wired/cifar10/retrain
# the paper's small regime, RandWire-WS(4, 0.75), C = 78, on ImageNet (data_dir: the image folders)
python main.py -d 0 -f examples/random_wired_imagenet_small.json -a Trainer -o log/random_wired/imagenet/small

# --- NAS-Bench-Macro's space (a mobilenet preset) on CIFAR-10 ----------------------------------
python main.py -d 0 --search -f examples/mobilenet_nas_bench_macro_search.json -a ProxylessNasSearcher -o log/mobilenet/nas_bench_macro/search
python main.py -d 0 -f examples/mobilenet_nas_bench_macro_train.json -a Trainer -o log/mobilenet/nas_bench_macro/train

# --- Hardware-aware search: latency on this machine's runtime (see docs/estimators.rst) ---------
# latency lookup table of a space (shipped for the example spaces on the development machine;
# rebuild it on yours: every layer measured once, then calibrated on 20 whole networks)
python main.py latency build -f examples/mobilenet_cifar10_search_latency.json -o log/latency/cifar10_cpu.json
python main.py -d 0 --search -f examples/mobilenet_cifar10_search_latency.json -a ProxylessNasSearcher -o log/mobilenet/cifar10/search_latency
# retrain the found architecture (reads log/mobilenet/cifar10/search_latency/arch.h5), its latency reported
python main.py -d 0 -f examples/mobilenet_cifar10_train_latency.json -a Trainer -o log/mobilenet/cifar10/train_latency
# MNIST under a tight latency budget (a few minutes on a CPU); the table goes to log/latency/mnist_cpu.json
python main.py latency build -f examples/mnist_search_latency.json
python main.py --search -f examples/mnist_search_latency.json -a ProxylessNasSearcher -o log/mnist/search_latency

# --- ENAS (Pham et al. 2018): an LSTM controller trained by REINFORCE (see docs/enas.rst) -------
# MNIST (embedded digits, minutes on a CPU): macro search, then retrain (reads its arch.h5)
python main.py --search -f examples/enas_macro_mnist_search.json -a EnasSearcher -o log/enas_macro/mnist/search
python main.py -f examples/enas_macro_mnist_train.json -a Trainer -o log/enas_macro/mnist/train
# the same search with the FLOPs in the reward (AutoGluon's (reference / FLOPs) ** 0.5)
python main.py --search -f examples/enas_macro_mnist_search_latency.json -a EnasSearcher -o log/enas_macro/mnist/search_flops
python main.py --search -f examples/enas_micro_mnist_search.json -a EnasSearcher -o log/enas_micro/mnist/search
# CIFAR-10 at the paper's sizes (many hours on a GPU)
python main.py -d 0 --search -f examples/enas_macro_cifar10_search.json -a EnasSearcher -o log/enas_macro/cifar10/search
python main.py -d 0 --search -f examples/enas_micro_cifar10_search.json -a EnasSearcher -o log/enas_micro/cifar10/search

# --- One-shot random search (uniform or FairNAS paths, BN recalibration; docs/random_search.rst) --
python main.py --search -f examples/random_mobilenet_mnist_search.json -a RandomSearcher -o log/random/mobilenet/mnist/search
python main.py --search -f examples/random_zoph_mnist_search.json -a RandomSearcher -o log/random/zoph/mnist/search
python main.py -d 0 --search -f examples/random_mobilenet_cifar10_search.json -a RandomSearcher -o log/random/mobilenet/cifar10/search

# --- Multi-trial search on Dask (each trial trains its child network from scratch) ------------
# MNIST: 12 trials of 2 epochs on a local cluster of one worker per core (minutes on 2 cores)
python main.py --search -f examples/mnist_trials.json -a EvolutionSearcher -o log/trials/mnist
python main.py --search -f examples/mnist_trials.json -a RandomTrials -o log/trials/mnist_random
python main.py --search -f examples/mnist_trials.json -a TpeTrials -o log/trials/mnist_tpe
# continue an interrupted experiment (a raised budget too: --set trials.budget=24)
python main.py --resume -o log/trials/mnist
# CIFAR-10: 500 trials of 10 epochs on an existing Dask cluster (docs/trials.rst, several machines)
python main.py -d 0 --search -f examples/mobilenet_cifar10_trials.json -a EvolutionSearcher -o log/trials/cifar10 --scheduler tcp://10.0.0.1:8786

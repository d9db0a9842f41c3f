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

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

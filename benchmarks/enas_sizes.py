"""Sizes of the ENAS spaces against the paper (Pham et al., ICML 2018), construction only.

Prints the number of architectures of both spaces at the paper's settings, and the weights of
the fixed networks the reference code retrains (its published architecture strings, CIFAR-10
input, 10 classes) next to the sizes the paper reports for its CIFAR-10 models (4.6M for the
micro network; the macro network's 21.3M cannot be matched construction for construction: the
reference code's retraining script uses 24 layers of 96 channels whose separable convolutions
are built as plain ones). Nothing is trained.

    .venv/bin/python benchmarks/enas_sizes.py
"""

from __future__ import annotations

import logging

from nnabla_nas.contrib.enas import EnasMacroConfig, EnasMacroSpace, EnasMicroConfig, EnasMicroSpace
from nnabla_nas.contrib.enas.arc import (
    ENAS_MACRO_FINAL,
    ENAS_MICRO_FINAL,
    macro_genotype,
    micro_genotype,
)


def weights(model: object, exclude: str = "") -> int:
    params = model.get_net_parameters(grad_only=True)  # type: ignore[attr-defined]
    return sum(p.size for k, p in params.items() if not (exclude and k.startswith(exclude)))


def main() -> None:
    logging.getLogger("nnabla").setLevel(logging.WARNING)
    macro = EnasMacroSpace.search_space_size(EnasMacroConfig())
    micro = EnasMicroSpace.search_space_size(EnasMicroConfig())
    print(f"enas_macro, 12 layers: {macro:.2e} architectures (paper: 1.6e29)")
    print(f"enas_micro, 5 nodes:   {micro:.2e} architectures (paper's count: 1.3e11)")
    cfg = EnasMicroConfig(num_layers=15, out_filters=36, in_channels=3, auxiliary=True)
    net = EnasMicroSpace(cfg, genotype=micro_genotype(ENAS_MICRO_FINAL))
    total, body = weights(net), weights(net, exclude="aux_head")
    print(
        f"micro final (15 cells + 2 reductions, 36 channels): {body / 1e6:.2f}M weights "
        f"({total / 1e6:.2f}M with the auxiliary head); paper: 4.6M, ratio {body / 4.6e6:.2f}"
    )
    cfg = EnasMacroConfig(num_layers=24, out_filters=96, in_channels=3)
    net = EnasMacroSpace(cfg, genotype=macro_genotype(ENAS_MACRO_FINAL))
    print(f"macro final (24 layers, 96 channels): {weights(net) / 1e6:.2f}M weights")


if __name__ == "__main__":
    main()

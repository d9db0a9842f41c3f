"""nnabla_nas: neural architecture search on Sony's NNabla."""

__version__ = "0.1.0"

"""Where a run computes: nnabla's extension context from ``-c``, ``-d`` and ``-t``.

- No ``-c`` (and no ``context`` in the file): the CUDA extension (``cudnn``) when it is
  installed (``pip install 'nnabla_nas[cuda]'``), else the CPU.
- ``-d ID`` picks the GPU. On a CPU-only install, or with ``-c cpu``, it has nothing to select:
  a warning says so and the run uses the CPU.
- ``-c cudnn`` without the extension is an error (exit 2).

The extension is found without being imported (importing it initialises CUDA).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = ["Device", "choose_device", "cuda_installed", "set_context"]


def cuda_installed() -> bool:
    """Whether nnabla's CUDA extension (``nnabla_ext.cuda``) is installed."""
    try:
        return importlib.util.find_spec("nnabla_ext.cuda") is not None
    except (ImportError, ValueError):  # no nnabla_ext package at all
        return False


@dataclass(frozen=True)
class Device:
    """A resolved device.

    Attributes:
        context: ``cpu`` or ``cudnn``.
        device_id: the GPU (0 on the CPU).
        type_config: ``float`` or ``half``.
        warning: what the run should be warned of (``-d`` given without a GPU), or None.
    """

    context: str
    device_id: int
    type_config: str
    warning: str | None = field(default=None, compare=False)

    def describe(self) -> str:
        """E.g. ``cudnn, GPU 0, float`` or ``cpu, float`` (the run's first log line)."""
        gpu = f", GPU {self.device_id}" if self.context == "cudnn" else ""
        return f"{self.context}{gpu}, {self.type_config}"


def choose_device(context: str | None, device_id: int | None,
                  type_config: str | None = None) -> Device:  # fmt: skip
    """The device of a run (see the module docstring).

    Args:
        context: ``-c`` (or the file's ``context``); None: cudnn if installed, else cpu.
        device_id: ``-d`` (or the file's ``device_id``); None: GPU 0.
        type_config: ``-t``; None: float.

    Raises:
        ConfigError: ``cudnn`` asked for but the extension is not installed.
    """
    cuda = cuda_installed()
    if context == "cudnn" and not cuda:
        raise ConfigError(
            "the CUDA extension (nnabla_ext.cuda) is not installed; install it with "
            "pip install 'nnabla_nas[cuda]' (the nnabla-ext-cuda matching your CUDA), "
            "or use -c cpu",
            key="context",
        )
    resolved = context or ("cudnn" if cuda else "cpu")
    warning = None
    if resolved == "cpu" and device_id is not None:
        why = "-c cpu was given" if cuda else "the CUDA extension is not installed"
        hint = "" if cuda else " (for a GPU: pip install 'nnabla_nas[cuda]', then -d ID)"
        warning = f"-d {device_id} is ignored: {why}, so the run uses the CPU{hint}"
    gpu = device_id if resolved == "cudnn" and device_id is not None else 0
    return Device(resolved, int(gpu), type_config or "float", warning)


def set_context(device: Device, device_id: int | None = None) -> None:
    """Makes ``device`` nnabla's default context (``device_id``, the local rank of a
    data-parallel process, wins over the device's own)."""
    import nnabla as nn
    from nnabla.ext_utils import get_extension_context

    gpu = device.device_id if device_id is None else device_id
    try:
        ctx = get_extension_context(device.context, device_id=str(gpu),
                                    type_config=device.type_config)  # fmt: skip
    except ImportError as err:
        raise ConfigError(
            f"the {device.context!r} extension cannot be loaded ({err}); "
            "install nnabla_nas[cuda] or use -c cpu",
            key="context",
        ) from None
    nn.set_default_context(ctx)

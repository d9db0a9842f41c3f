"""Errors raised by nnabla_nas.

Every error carries the process exit code the command line uses for it: 2 for bad input (a bad
configuration, a missing file, a wrong genotype), 1 for a failure while running.
"""

from __future__ import annotations


class NnasError(Exception):
    """A failure while running (exit code 1)."""

    exit_code: int = 1


class ConfigError(NnasError):
    """Bad input: the message names the key (or file) and what is valid (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


class DatasetNotFoundError(ConfigError):
    """A dataset's files are missing; the message says where to put them."""


class GenotypeError(ConfigError):
    """A genotype file is missing, unreadable, or belongs to another search space."""


class DataError(NnasError):
    """A data file listed by the dataset could not be decoded while running (the message
    names it; the files written before are intact)."""


class NonFiniteError(NnasError):
    """A loss (or a parameter) became NaN or Inf; nothing was written after the last good step."""


class CheckpointError(NnasError):
    """A checkpoint is missing, unreadable or does not belong to this run."""


class OutputError(NnasError):
    """Writing an output file failed (disk full, folder not writable); the files written before
    are intact. ``output`` is the run's output folder (to resume it)."""

    def __init__(self, message: str, output: str | None = None) -> None:
        self.output = output
        super().__init__(message)


class Interrupted(NnasError):
    """The run stopped on a signal after writing a checkpoint.

    The exit code is ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM), as a shell
    reports a process killed by that signal. ``output`` is the run's output folder (to resume it).
    """

    def __init__(self, message: str, signum: int, output: str | None = None) -> None:
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        self.output = output
        super().__init__(message)

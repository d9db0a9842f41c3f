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

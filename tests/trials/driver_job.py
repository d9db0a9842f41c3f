"""A driver process for the kill-and-resume test: ``python -m tests.trials.driver_job OUT``.

Runs 16 trials of regularized evolution on the toy table on a local 2-worker Dask cluster,
each trial taking 0.3 s, so that the test can kill it mid-experiment.
"""

from __future__ import annotations

import sys

from nnabla_nas.trials import EvolutionSearcher, run_experiment

from .toy import SlowTable, toy_table

TABLE = toy_table(4, 3)
BUDGET, WINDOW = 16, 2


def strategy() -> EvolutionSearcher:
    return EvolutionSearcher(TABLE.space(), 5, EvolutionSearcher.Config(6, 3))


def main(output: str, workers: int = 2, delay: float = 0.3, resume: bool = False) -> None:
    run_experiment(TABLE.space(), strategy(), SlowTable(TABLE, delay), output, BUDGET,
                   workers=workers, window=WINDOW, resume=resume)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])

"""Multi-trial NAS: each trial is one child network, proposed by a strategy, scored by an
evaluator, run on Dask; the trial log (``trials.jsonl``) is the experiment's state.

- :class:`SearchSpace` -- the decisions a strategy sees (``label -> candidate names``);
- strategies (:data:`STRATEGIES`): ``RandomTrials``, ``EvolutionSearcher`` (regularized
  evolution), ``TpeTrials`` (Optuna's TPE, optional);
- evaluators (:data:`EVALUATORS`): ``table`` (a benchmark table lookup), ``train`` (each trial
  trains its child network from scratch); the interface: :mod:`nnabla_nas.trials.evaluator`;
- :func:`run_experiment` -- the resumable experiment on a Dask cluster.

Adding a strategy or an evaluator is one module plus one line here.
"""

from __future__ import annotations

from ..registry import Registry
from .evaluator import Evaluator
from .evolution import EvolutionSearcher
from .experiment import ExperimentResult, run_experiment
from .objective import Constraint, HardwareEstimates, Objective
from .random_trials import RandomTrials
from .record import TrialRecord
from .setting import DataSetting, TrialSetting
from .space import Architecture, SearchSpace
from .strategy import Strategy
from .table import BenchmarkTable, TableEvaluator
from .tpe import TpeTrials
from .train import TrainEvaluator

__all__ = [
    "EVALUATORS",
    "STRATEGIES",
    "Architecture",
    "BenchmarkTable",
    "Constraint",
    "DataSetting",
    "Evaluator",
    "EvolutionSearcher",
    "ExperimentResult",
    "HardwareEstimates",
    "Objective",
    "RandomTrials",
    "SearchSpace",
    "Strategy",
    "TableEvaluator",
    "TpeTrials",
    "TrainEvaluator",
    "TrialRecord",
    "TrialSetting",
    "run_experiment",
]

#: Multi-trial strategies: name -> Strategy class.
STRATEGIES = Registry("trial strategy")
STRATEGIES.add("RandomTrials", RandomTrials, "random_trials")
STRATEGIES.add("EvolutionSearcher", EvolutionSearcher, "evolution", "regularized_evolution")
STRATEGIES.add("TpeTrials", TpeTrials, "tpe")

#: Trial evaluators: name -> Evaluator class.
EVALUATORS = Registry("trial evaluator")
EVALUATORS.add("table", TableEvaluator)
EVALUATORS.add("train", TrainEvaluator)

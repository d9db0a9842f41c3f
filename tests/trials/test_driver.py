"""The driver's deterministic schedule, retries, errors and replay; the trial log's format."""

from __future__ import annotations

import json

import pytest

from nnabla_nas.errors import ConfigError
from nnabla_nas.trials import EvolutionSearcher, RandomTrials, TableEvaluator
from nnabla_nas.trials.driver import Recorder, drive
from nnabla_nas.trials.executor import InlineExecutor
from nnabla_nas.trials.journal import Journal
from nnabla_nas.trials.objective import Objective

from .toy import RaisingTable, ShuffledExecutor, toy_table

TABLE = toy_table(4, 3)
SPACE = TABLE.space()
EVAL = TableEvaluator(TABLE)
RECORDER = Recorder(Objective("acc"))


def evolution(seed: int = 0) -> EvolutionSearcher:
    return EvolutionSearcher(SPACE, seed, EvolutionSearcher.Config(6, 3))


class Spy(EvolutionSearcher):
    """Notes how many results were told at each proposal."""

    def _propose(self):
        self.told_at = getattr(self, "told_at", []) + [self.told]
        return super()._propose()


def test_completion_order_does_not_change_the_trials():
    inline = drive(evolution(), InlineExecutor(EVAL), 30, RECORDER, window=3)
    shuffled_exec = ShuffledExecutor(EVAL, workers=3)
    shuffled = drive(evolution(), shuffled_exec, 30, RECORDER)  # window = workers = 3
    assert [r.architecture for r in shuffled] == [r.architecture for r in inline]
    assert [r.score for r in shuffled] == [r.score for r in inline]
    assert [r.trial for r in shuffled] == list(range(30))
    returned = shuffled_exec.returned  # the results did come back out of order
    assert sorted(returned) == list(range(30)) and returned != sorted(returned)
    sequential = drive(evolution(), InlineExecutor(EVAL), 30, RECORDER, window=1)
    assert [r.architecture for r in sequential] != [r.architecture for r in inline]


def test_window_bounds_the_proposals_ahead_of_the_results():
    spy = Spy(SPACE, 0, EvolutionSearcher.Config(6, 3))
    drive(spy, ShuffledExecutor(EVAL), 20, RECORDER, window=4)
    assert spy.told_at == [max(0, k - 3) for k in range(20)]  # trial k after 0..k-4 told


def test_a_dead_worker_is_retried_then_the_trial_is_killed():
    ex = ShuffledExecutor(EVAL, workers=2, lose={2: 1, 5: 10})
    records = drive(RandomTrials(SPACE, 1), ex, 8, RECORDER, retries=2)
    assert [r.trial for r in records] == list(range(8))  # every trial recorded once
    assert records[2].status == "ok" and records[2].attempts == 2
    killed = records[5]
    assert killed.status == "killed" and killed.attempts == 3 and killed.score is None
    assert "died on each of 3 attempts" in killed.error and "planted" in killed.error
    assert [q.trial for q in ex.submitted].count(5) == 3
    assert all(r.status == "ok" and r.attempts == 1 for r in records if r.trial not in (2, 5))


def test_a_raising_trial_is_recorded_with_its_error():
    records = drive(RandomTrials(SPACE, 1), InlineExecutor(RaisingTable(TABLE, bad=3)), 6,
                    RECORDER)  # fmt: skip
    bad = records[3]
    assert bad.status == "error" and bad.score is None and not bad.feasible
    assert bad.error.startswith("ValueError: planted failure of trial 3 (at toy.py:")
    assert all(r.status == "ok" for r in records if r.trial != 3) and len(records) == 6


def test_replay_runs_only_the_missing_trials():
    full = drive(evolution(3), InlineExecutor(EVAL), 24, RECORDER, window=2)
    # a driver killed after recording trials 0..15 and 17 (16 was running)
    finished = {r.trial: r for r in full if r.trial <= 15 or r.trial == 17}
    ex = ShuffledExecutor(EVAL, workers=2)
    resumed = drive(evolution(3), ex, 24, RECORDER, window=2, finished=finished)
    assert sorted(q.trial for q in ex.submitted) == [16, *range(18, 24)]
    assert [r.architecture for r in resumed] == [r.architecture for r in full]
    assert [r.score for r in resumed] == [r.score for r in full]


def test_replay_refuses_another_seed():
    full = drive(evolution(3), InlineExecutor(EVAL), 10, RECORDER)
    with pytest.raises(ConfigError, match="records trial 0 as .* the strategy now proposes") as e:
        drive(evolution(4), InlineExecutor(EVAL), 10, RECORDER,
              finished={r.trial: r for r in full})  # fmt: skip
    assert e.value.key == "--resume"


def test_stop_ends_the_search_early():
    target = max(TABLE.entries, key=lambda k: TABLE.entries[k]["acc"])
    records = drive(RandomTrials(SPACE, 0), InlineExecutor(EVAL), 81, RECORDER,
                    stop=lambda r: TABLE.key(r.genotype) == target)  # fmt: skip
    assert TABLE.key(records[-1].genotype) == target and len(records) < 81


def test_journal_roundtrip_torn_line_and_corruption(tmp_path):
    records = drive(RandomTrials(SPACE, 0), InlineExecutor(EVAL), 3, RECORDER)
    journal = Journal(tmp_path / "trials.jsonl")
    for r in records:
        journal.append(r)
    assert journal.read() == records
    with open(journal.path, "a") as f:
        f.write('{"trial": 3, "archi')  # a driver killed while writing
    assert journal.read() == records
    journal.repair()
    assert journal.path.read_text().endswith("}\n") and journal.read() == records
    journal.append(records[0])  # a trial recorded twice keeps its first record
    assert journal.read() == records
    lines = journal.path.read_text().splitlines()
    lines[1] = "not json"
    journal.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="line 2 is not a trial record"):
        journal.read()


def test_journal_writes_strict_json(tmp_path):
    record = drive(RandomTrials(SPACE, 0), InlineExecutor(EVAL), 1, RECORDER)[0]
    bad = type(record)(**{**record.to_dict(), "scores": {"acc": float("nan")}})
    journal = Journal(tmp_path / "t.jsonl")
    journal.append(bad)
    line = journal.path.read_text()
    assert "NaN" not in line and json.loads(line)["scores"] == {"acc": None}

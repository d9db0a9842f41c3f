"""The documentation against the code: every command of README.md and docs/ parses (its flags
exist, its files exist, its ``--set`` keys are keys of its experiment file), and the documented
flags and experiment keys are the code's (neither side has one the other lacks)."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import pytest

from nnabla_nas.cli import SUBCOMMANDS, apply_override
from nnabla_nas.cli.args import FLAGS, build_parser
from nnabla_nas.cli.names import ALGORITHM_NAMES, STRATEGY_NAMES
from nnabla_nas.errors import ConfigError
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst"))]
#: How a documented command starts, up to the program's arguments.
PROGRAM = re.compile(r"^(?:\.venv/bin/)?(?:mpirun -n \d+ (?:\.venv/bin/)?)?"
                     r"(?:(?:python|\.venv/bin/python) main\.py|nnabla-nas)(?:\s|$)")  # fmt: skip
#: Folders a documented command may name before an earlier command has written them.
WRITTEN = ("log/", "~/")


def code_blocks(path: Path) -> list[list[str]]:
    """The code blocks of a Markdown (fenced) or reStructuredText (``::`` or ``code-block``)
    file, as lists of lines."""
    lines = path.read_text().splitlines()
    blocks: list[list[str]] = []
    if path.suffix == ".md":
        block = None
        for line in lines:
            if line.startswith("```"):
                if block is not None:
                    blocks.append(block)
                block = [] if block is None else None
            elif block is not None:
                block.append(line)
        return blocks
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(".. code-block:: text"):  # a synopsis, not a command
            i += 1
        elif line.rstrip().endswith("::") or line.lstrip().startswith(".. code-block::"):
            indent = len(line) - len(line.lstrip())
            block, i = [], i + 1
            while i < len(lines) and (not lines[i].strip() or
                                      len(lines[i]) - len(lines[i].lstrip()) > indent):  # fmt: skip
                block.append(lines[i].strip())
                i += 1
            blocks.append(block)
        else:
            i += 1
    return blocks


def commands(path: Path) -> list[str]:
    """The ``python main.py`` / ``nnabla-nas`` commands of ``path``'s code blocks (continued
    lines joined, ``$`` prompts and comments dropped)."""
    out = []
    for block in code_blocks(path):
        joined, pending = [], ""
        for line in block:
            line = line.removeprefix("$ ")
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            joined.append(pending + line)
            pending = ""
        out += [line for line in joined if PROGRAM.match(line)]
    return out


def arguments(command: str) -> list[str]:
    """The program's arguments of a documented command."""
    words = shlex.split(command, comments=True)
    at = next(i for i, w in enumerate(words) if w in ("main.py", "nnabla-nas"))
    return words[at + 1 :]


def _outputs(path: Path) -> list[tuple[str, ...]]:
    """Per command of ``path``: the output folders (``-o``) of the commands before it."""
    written, out = [], []
    for command in commands(path):
        out.append(tuple(written))
        argv = arguments(command)
        if argv and argv[0] not in SUBCOMMANDS and "-o" in argv[:-1]:
            written.append(argv[argv.index("-o") + 1].rstrip("/"))
    return out


DOCUMENTED = [(path.relative_to(ROOT).as_posix(), c, w) for path in DOCS
              for c, w in zip(commands(path), _outputs(path))]  # fmt: skip


def test_the_docs_have_commands_to_check():
    files = {f for f, _, _ in DOCUMENTED}
    assert {"README.md", "docs/tutorial.rst", "docs/resume.rst", "docs/export.rst"} <= files
    assert len(DOCUMENTED) > 40


def _subcommand_parser(name: str):
    import importlib

    module = importlib.import_module(SUBCOMMANDS[name])
    if hasattr(module, "build_parser"):
        return module.build_parser().parse_args
    return module._parse


def _exists(path: str) -> bool:
    return path.startswith(WRITTEN) or (ROOT / path).exists()


def check_command(argv: list[str], written: tuple[str, ...] = ()) -> None:
    """Raises ConfigError or AssertionError when the documented ``argv`` cannot run as written
    (placeholders such as ``CONFIG.json`` or ``OUTPUT_DIR`` are not commands and fail).

    ``written``: the output folders of the commands before it on the same page; a genotype under
    ``log/`` must be in one of them (the page's commands run in order, copy-pasted)."""
    if argv and argv[0] in SUBCOMMANDS:
        args = _subcommand_parser(argv[0])(argv[1:])
        path = getattr(args, "file", None)
        assert path is None or _exists(path), f"-f {path}: no such file"
        return
    args = build_parser(tuple(SUBCOMMANDS)).parse_args(argv)
    if args.algorithm is not None:
        known = {n.lower() for n in (*ALGORITHM_NAMES, *STRATEGY_NAMES)}
        assert args.algorithm.lower() in known, args.algorithm
    if args.file is None:
        assert args.resume, "-f is required except with --resume"
        return
    assert _exists(args.file), f"-f {args.file}: no such file"
    if args.file.startswith(WRITTEN):
        return
    from nnabla_nas.config import ExperimentConfig

    data = json.loads((ROOT / args.file).read_text())
    for assignment in args.set:
        apply_override(data, assignment)
    genotype = data.get("network", {}).get("genotype")
    if isinstance(genotype, str):
        assert _exists(genotype), f"network.genotype {genotype}: no such file"
        if genotype.startswith("log/"):
            folder = genotype.rsplit("/", 1)[0]
            assert folder in written, (
                f"network.genotype {genotype}: no command above writes {folder} "
                f"(they write {', '.join(written) or 'nothing'})"
            )
    ExperimentConfig.from_dict(data)  # every key and value checked


@pytest.mark.parametrize("where, command, written", DOCUMENTED,
                         ids=[f"{f}:{c[:60]}" for f, c, _ in DOCUMENTED])  # fmt: skip
def test_documented_command_runs_as_written(where, command, written):
    try:
        check_command(arguments(command), written)
    except (ConfigError, AssertionError) as err:
        pytest.fail(f"{where}: {command}\n  {err}")


@pytest.mark.parametrize(
    "argv",
    [
        ["-f", "examples/mnist_search.json", "-a", "ProxylesNasSearcher", "-o", "log/x"],
        ["-f", "examples/no_such.json", "-a", "Trainer", "-o", "log/x"],
        ["-f", "examples/mnist_train.json", "-a", "Trainer", "-o", "x", "--set", "epochs=2"],
        ["-f", "examples/mnist_train.json", "-a", "Trainer", "-o", "x", "--sed", "1"],
        ["--search", "-f", "CONFIG.json", "-a", "ProxylessNasSearcher", "-o", "OUTPUT_DIR"],
        ["export", "-o", "log/x", "--format", "tflite"],
    ],
)
def test_a_broken_command_is_caught(argv):
    with pytest.raises((ConfigError, AssertionError)):
        check_command(argv)


# ---------------------------------------------------------------------- documented flags, keys
def _table_keys(path: Path, section: str) -> set[str]:
    """The ``literal`` names in the first column of the first list-table after ``section``."""
    text = path.read_text()
    table = text[text.index(section) :]
    table = table[table.index(".. list-table::") :]
    names: set[str] = set()
    for row in re.findall(r"^   \* - (.+)$", table, flags=re.M)[1:]:  # [0]: the header
        if not row.startswith("``"):
            break
        names.update(re.findall(r"``([^`]+)``", row))
    return names


def test_documented_flags_are_the_parsers():
    documented = set()
    for name in _table_keys(ROOT / "docs/cli.rst", "The command line"):
        documented.update(name.split("/"))
    code = set(FLAGS) - {"-h", "--help"}
    assert documented == code, (
        f"docs/cli.rst lacks {sorted(code - documented)}; documents {sorted(documented - code)}"
    )


def test_documented_experiment_keys_are_the_configs():
    from nnabla_nas.config import ExperimentConfig

    documented = _table_keys(ROOT / "docs/experiment.rst", "Top-level keys")
    code = {f.name for f in dataclasses.fields(ExperimentConfig)}
    assert documented == code, (
        f"docs/experiment.rst lacks {sorted(code - documented)}; "
        f"documents {sorted(documented - code)}"
    )

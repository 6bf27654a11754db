"""One CLI vocabulary: help on every argument with its default, one meaning per option name, old spellings kept."""

from __future__ import annotations

import argparse
import importlib

import pytest

from gpic_lab.commands.bench import available
from gpic_lab.commands.cli import HelpFormatter, build_parser


def _walk(parser: argparse.ArgumentParser, name: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child_name, child in action.choices.items():
                yield from _walk(child, f"{name} {child_name}")
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield name, parser, action


def _bench_parsers():
    for bench in available():
        module = importlib.import_module(f"gpic_lab.benches.{bench}")
        parser = argparse.ArgumentParser(prog=f"gpic-lab bench {bench}", formatter_class=HelpFormatter)
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
        yield from _walk(parser, f"bench {bench}")


def test_every_argument_has_help() -> None:
    missing = [(name, action.option_strings or action.dest) for name, _, action in
               [*_walk(build_parser(), "gpic-lab"), *_bench_parsers()] if not action.help]
    assert not missing, missing


def test_help_shows_defaults() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    caption = sub.choices["caption"].format_help()
    assert "(default: 8)" in caption and "(default: auto)" in caption and "--shard-range" in caption
    run = sub.choices["run"].format_help()
    assert "--execution-timeout" in run and "(default: 1)" in run
    assert "--workers" not in caption  # the old spelling is accepted but not advertised


def test_option_names_mean_one_thing() -> None:
    """`--workers` counts processes, `--threads` threads, `--dtype` a torch dtype, `--force` redoes work."""
    meanings: dict[str, set[str]] = {}
    for name, _, action in _walk(build_parser(), "gpic-lab"):
        if action.help == argparse.SUPPRESS:
            continue
        for opt in action.option_strings:
            meanings.setdefault(opt, set()).add(name)
    assert not {"--overwrite", "--max-pixels"} & {o for o, cmds in meanings.items() if "gpic-lab validate" in cmds
                                                  or "gpic-lab fiftyone load" in cmds}
    assert "gpic-lab caption" not in meanings["--workers"] and "gpic-lab eval" not in meanings.get("--dtype", set())
    assert {"gpic-lab caption", "gpic-lab eval", "gpic-lab refstats"} <= meanings["--threads"]
    for opt in ("--progress", "--shard-range"):
        assert {"gpic-lab caption", "gpic-lab stage", "gpic-lab refstats", "gpic-lab dedup"} <= meanings[opt]


@pytest.mark.parametrize(("argv", "dest", "value"), [
    (["caption", "x.tar", "--out", "o", "--model", "tiny", "--workers", "3"], "threads", 3),
    (["caption", "x.tar", "--out", "o", "--model", "tiny", "--no-progress"], "progress", "off"),
    (["eval", "s", "--ref", "r.npz", "--dtype", "fp16-autocast"], "precision", "fp16-autocast"),
    (["validate", "x.tar", "--max-pixels", "5"], "pixel_limit", 5),
    (["fiftyone", "load", "x.tar", "--name", "n", "--overwrite"], "force", True),
    (["fiftyone", "load", "x.tar", "--name", "n", "--limit", "4"], "sample", 4),
    (["fiftyone", "load", "x.tar", "--name", "n", "--shards", "0:2"], "shards", "0:2"),
    (["run", "nb.ipynb", "-p", "a", "1", "-p", "b=2"], "parameter", [("a", "1"), ("b", "2")]),
])
def test_old_spellings_still_work(argv: list[str], dest: str, value: object) -> None:
    assert getattr(build_parser().parse_args(argv), dest) == value


def test_minus_o_is_out_wherever_out_exists() -> None:
    """`-o` is the short form of `--out` in every command (never anything else)."""
    outs = [(name, action.option_strings) for name, _, action in _walk(build_parser(), "gpic-lab")
            if "--out" in action.option_strings or "-o" in action.option_strings]
    assert len(outs) >= 10, outs
    wrong = [(name, opts) for name, opts in outs if sorted(opts) != ["--out", "-o"]]
    assert not wrong, wrong

"""The `gpic-lab` command. Subcommands live in gpic_lab/commands/<name>.py, each exposing
`register(subparsers)`; they are discovered here so that adding a verb never touches this file."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from gpic_lab import __version__
from gpic_lab.errors import GpicError, printable


def _command_modules() -> list[str]:
    import gpic_lab.commands as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_") and m.name != "cli")


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default after its help, unless the help already names it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (not action.option_strings or action.default in (None, False, argparse.SUPPRESS)
                or "default" in text.lower() or text == argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def _use_formatter(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _use_formatter(child)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every discovered subcommand."""
    parser = argparse.ArgumentParser(prog="gpic-lab", description="GPIC research workbench")
    parser.add_argument("--version", action="version", version=f"gpic-lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _command_modules():
        importlib.import_module(f"gpic_lab.commands.{name}").register(sub)
    _use_formatter(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn GpicError into a one-line message and an exit code."""
    from gpic_lab.paths import configure_environment
    from gpic_lab.progress import setup_logging

    configure_environment()
    setup_logging()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GpicError as exc:
        print(f"gpic-lab {args.command}: error: {printable(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"gpic-lab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

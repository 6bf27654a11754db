"""Typed errors. The CLI turns them into one-line messages and exit codes; the library never calls sys.exit."""

from __future__ import annotations


def exception_line(exc: BaseException, with_type: bool = False) -> str:
    """The first line of an exception's message for a one-line error (its type name when the message is empty),
    prefixed by the type name with `with_type`."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if with_type else lines[0]


class GpicError(Exception):
    """Base class for errors shown to users as one line (exit code 1 unless a subclass says otherwise)."""

    exit_code = 1


class UsageError(GpicError):
    """Bad command-line usage or bad parameters (exit code 2)."""

    exit_code = 2


class ShardError(GpicError):
    """A problem inside a shard, located by shard and member, with a code from the validate vocabulary."""

    def __init__(self, shard: str, member: str, code: str, message: str) -> None:
        self.shard, self.member, self.code, self.message = shard, member or "-", code, message
        super().__init__(f"{shard}:{self.member}: {code}: {message}")

"""Typed errors. The CLI turns them into one-line messages and exit codes; the library never calls sys.exit."""

from __future__ import annotations


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

"""Typed errors. The CLI turns them into one-line messages and exit codes; the library never calls sys.exit."""

from __future__ import annotations

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: object) -> str:
    """`text` with every non-printable character (newline, escape, other controls, line separators) written as a
    backslash escape, so a name taken from an input can never start a new output line or drive a terminal."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _ESCAPES.get(c) or _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


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
        super().__init__(f"{printable(shard)}:{printable(self.member)}: {code}: {printable(message)}")

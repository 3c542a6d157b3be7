"""The error data problems raise: a missing path, an unreadable archive, too many bad files."""

from __future__ import annotations


class DataError(RuntimeError):
    """Input data that cannot be prepared or read; the message names the file or params key."""

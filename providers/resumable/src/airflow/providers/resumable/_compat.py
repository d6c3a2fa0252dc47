# Licensed under the Apache License, Version 2.0.
"""
What the standard library has from Python 3.11 on, for Python 3.10 (the oldest Airflow 3.3 supports).

Import ``StrEnum`` from here, never from :mod:`enum`: on 3.10 ``enum`` has none. The backport is
the 3.11 class's behaviour that our code relies on: members are ``str``, and ``str()``, ``format()``
and f-strings give the value (a plain ``(str, Enum)`` gives ``"Class.MEMBER"`` from ``str()``,
which would change log lines and the ledger's JSON round trip).
"""

from __future__ import annotations

import sys
from enum import Enum

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:

    class StrEnum(str, Enum):
        """Python 3.11's :class:`enum.StrEnum`: a ``str`` enum whose ``str()`` is its value."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, format_spec: str) -> str:
            return str(self.value).__format__(format_spec)

        @staticmethod
        def _generate_next_value_(name: str, start: int, count: int, last_values: list[str]) -> str:
            # As 3.11: auto() gives the lower-cased member name.
            return name.lower()


__all__ = ["StrEnum"]

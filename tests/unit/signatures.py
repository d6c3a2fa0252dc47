# Licensed under the Apache License, Version 2.0.
"""What an operator's constructor accepts by name, across its bases: the parity tests compare these."""

from __future__ import annotations

import inspect

from airflow.sdk import BaseOperator


def constructor_parameters(cls: type, *, below: type = BaseOperator) -> dict[str, inspect.Parameter]:
    """
    Every named constructor parameter of ``cls`` and of its bases that ``below`` is not (nor one of).

    Upstream declares some arguments on a base, not on the operator: ``AwsBaseOperator`` takes
    ``aws_conn_id``, ``region_name``, ... and the deprecated ``region``; the task SDK's
    ``ResumableJobMixin`` takes ``durable``. ``BaseOperator``'s own are left out: both sides share it.
    Where two classes declare one name, the most derived wins, as a call sees it.

    :param cls: the operator class.
    :param below: stop at this class and its bases (``BaseOperator``; our own base, to ask what an
        operator's docstring must document).
    """
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if issubclass(below, klass) or "__init__" not in vars(klass):
            continue
        for name, parameter in inspect.signature(klass.__init__).parameters.items():
            if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                found.setdefault(name, parameter)
    return found


_HIDDEN_ALIAS_MARKERS = ("kwargs.pop(", "kwargs.get(", "in kwargs", "warnings.warn(")


def hidden_alias_lines(source: str) -> list[str]:
    """
    Lines of a constructor's source that could take an argument without naming it (read out of
    ``**kwargs``) or deprecate one (warn): aliases a signature comparison cannot see.

    :param source: the text of one ``__init__``.
    """
    return [line.strip() for line in source.splitlines() if any(m in line for m in _HIDDEN_ALIAS_MARKERS)]


def upstream_constructor_sources(cls: type, package: str) -> dict[str, str]:
    """The source of every ``__init__`` that ``cls`` and its bases from ``package`` define, by class name."""
    return {
        klass.__name__: inspect.getsource(klass.__init__)
        for klass in cls.__mro__
        if "__init__" in vars(klass) and klass.__module__.startswith(package)
    }

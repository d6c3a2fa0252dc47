# Licensed under the Apache License, Version 2.0.
"""The standard-library backports behave as Python 3.11's originals (the 3.10 branch runs in ``make test-python``)."""

from __future__ import annotations

import json
from enum import auto

from airflow.providers.resumable._compat import StrEnum


class Colour(StrEnum):
    RED = "red"
    DARK_BLUE = auto()


def test_str_enum_members_are_their_values_in_str_format_and_json():
    assert isinstance(Colour.RED, str)
    assert str(Colour.RED) == "red"
    assert f"{Colour.RED}|{Colour.RED:>5}" == "red|  red"
    assert json.dumps({"c": Colour.RED}) == '{"c": "red"}'
    assert Colour("red") is Colour.RED


def test_auto_gives_the_lower_cased_name():
    assert Colour.DARK_BLUE == "dark_blue"

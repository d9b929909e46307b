"""Fixtures shared by the core tests: the built-in expansion dictionary and its expander."""

from __future__ import annotations

import pytest

from gallery_app.core.expansion import Expander, builtin_dictionary


@pytest.fixture(scope="module")
def builtin():
    return builtin_dictionary()


@pytest.fixture(scope="module")
def expander(builtin):
    return Expander(builtin)

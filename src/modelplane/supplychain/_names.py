"""Package names as an index compares them: PEP 503 normalisation and separator folding."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """The PEP 503 form: lower case, every run of ``-``, ``_`` and ``.`` one ``-``."""
    return _SEPARATORS.sub("-", name).lower()


def fold(name: str) -> str:
    """The name without separators or case (``python-dateutil`` -> ``pythondateutil``): two
    names that fold alike look alike to a person, but the index holds them apart."""
    return _SEPARATORS.sub("", name).lower()


def package_key(name: str, ecosystem: str) -> str:
    """How an index of that ecosystem compares names: PEP 503 for PyPI; npm only ignores case
    (``lodash.merge`` and ``lodash-merge`` are two packages there)."""
    return normalize(name) if ecosystem == "PyPI" else name.lower()

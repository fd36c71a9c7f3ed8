"""A small index for the dependency guard's tests: real names with made-up but plausible ranks,
written by the tests themselves (no network, no downloaded list)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from modelplane.supplychain import IndexSnapshot, build, read_name_list

NAMES = """\
name\tfirst_release\trank\tlicense
boto3\t2014-11\t1\tApache-2.0
urllib3\t2008-11\t3\tMIT
requests\t2011-02\t6\tApache-2.0
python-dateutil\t2003-06\t13\tApache-2.0 OR BSD-3-Clause
pyyaml\t2006-05\t15\tMIT
numpy\t2006-12\t20\tBSD-3-Clause
django\t2005-07\t40\tBSD-3-Clause
requests-toolbelt\t2014-01\t116\tApache-2.0
flask\t2010-04\t181\tBSD-3-Clause
colorama\t2010-11\t81\tBSD-3-Clause
pandas\t2009-12\t37\tBSD-3-Clause
yaml\t2015-03\t2900\t
urllib\t2016-01\t4100\t
requests2\t2013-05\t90\tApache-2.0
reqeusts\t2025-06\t\t
fresh-thing\t2026-12-01\t\tMIT
gpl-thing\t2012-01\t\tGPL-3.0-only
pandaz\t2010-01\t13902\tBSD-3-Clause
"""

#: "today" for every check, so that "new" does not depend on when the tests run
TODAY = dt.date(2026, 12, 7)


@pytest.fixture
def names_file(tmp_path: Path) -> Path:
    path = tmp_path / "names.tsv"
    path.write_text(NAMES)
    return path


@pytest.fixture
def snapshot(names_file: Path) -> IndexSnapshot:
    return build(read_name_list(names_file), ecosystem="PyPI", source="test", built=TODAY)


@pytest.fixture
def snapshot_file(tmp_path: Path, snapshot: IndexSnapshot) -> Path:
    path = tmp_path / "index-snapshot.json"
    snapshot.dump(path)
    return path

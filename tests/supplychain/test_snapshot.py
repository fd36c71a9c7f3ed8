"""The index snapshot: reading name lists, writing and loading the file, names in PEP 503 form."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from modelplane.supplychain import (
    IndexSnapshot,
    Release,
    SnapshotError,
    build,
    fold,
    normalize,
    read_name_list,
)


def test_names_compare_in_pep_503_form_and_fold_without_separators() -> None:
    assert normalize("Python_Dateutil") == normalize("python.dateutil") == "python-dateutil"
    assert fold("python-dateutil") == fold("PythonDateutil") == "pythondateutil"


def test_a_snapshot_answers_any_spelling_with_rank_release_and_license(
    snapshot: IndexSnapshot,
) -> None:
    pkg = snapshot.get("Python_DateUtil")
    assert pkg is not None
    assert (pkg.name, pkg.rank, str(pkg.released)) == ("python-dateutil", 13, "2003-06")
    assert pkg.license == "Apache-2.0 OR BSD-3-Clause"
    assert snapshot.get("flask-gpt-helper") is None
    assert snapshot.top(3) == [("boto3", 1), ("urllib3", 3), ("requests", 6)]


def test_a_snapshot_written_and_loaded_is_the_same_in_json_and_gzip(
    tmp_path: Path, snapshot: IndexSnapshot
) -> None:
    for name in ("s.json", "s.json.gz"):
        snapshot.dump(tmp_path / name)
        loaded = IndexSnapshot.load(tmp_path / name)
        assert loaded.names == snapshot.names
        assert loaded.ranks == snapshot.ranks
        assert loaded.released == snapshot.released
        assert loaded.licenses == snapshot.licenses
        assert loaded.built == "2026-12-07"
    assert (tmp_path / "s.json.gz").stat().st_size < (tmp_path / "s.json").stat().st_size


def test_a_list_without_header_is_name_release_rank_license_and_csv_works(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("# a comment\nRequests,2011-02-14,6,Apache-2.0\nnumpy,,20\nflask\n")
    packages = {p.name: p for p in read_name_list(path)}
    assert packages["requests"].released == Release(2011, 2, 14)
    assert packages["numpy"].released is None and packages["numpy"].rank == 20
    assert packages["flask"].rank is None


def test_a_header_names_the_columns_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "names.tsv"
    path.write_text(
        "name\tversion\tmonth\trank_among_most_downloaded\tsummary\nrequests\t2.0\t2011-02\t6\tHTTP\n"
    )
    (pkg,) = read_name_list(path)
    assert (pkg.name, str(pkg.released), pkg.rank) == ("requests", "2011-02", 6)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("requests\t2011-13\t6", "is not a date"),
        ("requests\t2011-02\tsix", "is not a whole number"),
        ("requests\t2011-02\t0", "must be 1 or more"),
        ("not a name\t2011-02\t6", "is not a package name"),
    ],
)
def test_a_bad_row_is_reported_with_its_file_and_line(
    tmp_path: Path, row: str, problem: str
) -> None:
    path = tmp_path / "names.tsv"
    path.write_text(f"boto3\t2014-11\t1\n{row}\n")
    with pytest.raises(SnapshotError, match=problem) as caught:
        read_name_list(path)
    assert f"{path}:2:" in str(caught.value)


def test_a_file_that_is_not_a_snapshot_says_so(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"names": []}')
    with pytest.raises(SnapshotError, match="not an index snapshot"):
        IndexSnapshot.load(path)
    with pytest.raises(SnapshotError, match="no such index snapshot"):
        IndexSnapshot.load(tmp_path / "missing.json")


def test_a_name_given_twice_keeps_its_best_rank_and_earliest_release(tmp_path: Path) -> None:
    path = tmp_path / "names.tsv"
    path.write_text("requests\t2012-01\t9\nRequests\t2011-02\t\n")
    snap = build(read_name_list(path), ecosystem="PyPI", source="t", built=dt.date(2026, 1, 1))
    pkg = snap.get("requests")
    assert pkg is not None and (pkg.rank, str(pkg.released)) == (9, "2011-02")


def test_a_month_counts_from_its_last_day() -> None:
    assert Release(2026, 2).last_day() == dt.date(2026, 2, 28)
    assert Release(2026, 12).last_day() == dt.date(2026, 12, 31)
    assert Release(2026, 12, 3).last_day() == dt.date(2026, 12, 3)

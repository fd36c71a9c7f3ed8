"""Typosquats: near-misses of popular names are caught, popular real packages never are."""

from __future__ import annotations

import pytest

from modelplane.supplychain import IndexSnapshot, TyposquatDetector
from modelplane.supplychain._typosquat import describe_edit, osa_distance


@pytest.fixture
def detector(snapshot: IndexSnapshot) -> TyposquatDetector:
    return TyposquatDetector(snapshot)


def test_a_swapped_pair_names_the_popular_package_and_its_rank(
    detector: TyposquatDetector,
) -> None:
    found = detector.check("reqeusts", exists=True)
    assert found is not None
    assert found.message == (
        "`reqeusts` is 1 edit from `requests` (rank 6, swapped 'ue'); did you mean requests?"
    )


@pytest.mark.parametrize(
    ("name", "target", "detail"),
    [
        ("reqests", "requests", "omitted 'u'"),
        ("requestss", "requests", "repeated 's'"),
        ("requesrs", "requests", "'r' for 't', keyboard neighbours"),
        ("requeststoolbelt", "requests-toolbelt", ""),  # only the separator is gone
        ("pythondateutil", "python-dateutil", ""),
        ("nunpy", "numpy", "'n' for 'm', keyboard neighbours"),
        ("djanfo", "django", "'f' for 'g', keyboard neighbours"),
    ],
)
def test_near_misses_of_popular_names_that_do_not_exist_are_suspect(
    detector: TyposquatDetector, name: str, target: str, detail: str
) -> None:
    found = detector.check(name, exists=False)
    assert found is not None and found.target == target
    assert found.detail == detail


def test_separators_and_case_alone_are_the_same_package_not_a_squat(
    detector: TyposquatDetector,
) -> None:
    # PEP 503 makes these one name: pip installs python-dateutil for each
    assert detector.check("python_dateutil", exists=True) is None
    assert detector.check("Python.DateUtil", exists=True) is None


def test_added_prefixes_suffixes_and_deceptive_words_are_suspect(
    detector: TyposquatDetector,
) -> None:
    for name, kind in (
        ("python-requests", "affix"),
        ("requests-python", "affix"),
        ("dateutil", "affix"),  # python- dropped
        ("requests-secure", "combosquat"),
        ("official-flask", "combosquat"),
    ):
        found = detector.check(name, exists=False)
        assert found is not None and found.kind == kind, name
    secure = detector.check("requests-secure", exists=False)
    assert secure is not None and secure.target == "requests"


def test_real_companions_and_popular_neighbours_are_never_flagged(
    detector: TyposquatDetector,
) -> None:
    # a companion with an honest word, and popular names next to other popular names
    for name in ("requests-toolbelt", "urllib3", "pyyaml", "requests2", "requests", "numpy"):
        assert detector.check(name, exists=True) is None, name


def test_a_name_that_exists_is_flagged_only_across_the_popularity_gap(
    snapshot: IndexSnapshot,
) -> None:
    # yaml (rank 2900) is 'py' short of pyyaml (rank 15): 193 times less downloaded
    strict = TyposquatDetector(snapshot, trusted_rank=100)
    found = strict.check("yaml", exists=True)
    assert found is not None and found.target == "pyyaml"
    # within the gap (or trusted as popular) it is not
    assert TyposquatDetector(snapshot, trusted_rank=100, gap=500).check("yaml", exists=True) is None
    assert TyposquatDetector(snapshot).check("yaml", exists=True) is None


def test_short_popular_names_match_only_by_folding_and_affixes(snapshot: IndexSnapshot) -> None:
    detector = TyposquatDetector(snapshot)
    # boto3 is five letters: one edit is allowed, two are not
    assert detector.check("boto4", exists=False) is not None
    assert detector.check("bxtx3", exists=False) is None


def test_osa_distance_counts_a_swap_as_one_edit_and_stops_past_the_limit() -> None:
    assert osa_distance("reqeusts", "requests", 2) == 1
    assert osa_distance("requests", "requests", 2) == 0
    assert osa_distance("abcdef", "badcfe", 2) == 3  # past the limit: limit + 1
    assert osa_distance("numpy", "nump", 1) == 1


def test_an_edit_is_described_in_words() -> None:
    assert describe_edit("requets", "requests") == "omitted 's'"
    assert describe_edit("requestts", "requests") == "repeated 't'"
    assert describe_edit("requexsts", "requests") == "added 'x'"
    assert describe_edit("reqeusts", "requests") == "swapped 'ue'"
    assert describe_edit("requestc", "requests") == "'c' for 's', one bit flipped"

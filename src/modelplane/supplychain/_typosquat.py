"""Typosquats: names made to be mistaken for a popular package.

The popular names are the snapshot's best-ranked ones. A name is suspect when, folded (no case,
no separators), it is within a Damerau edit (omitted, repeated, swapped, substituted character:
keyboard neighbours and bit flips are substitutions) of a popular name, folds to the same letters
with other separators, adds or drops a known prefix or suffix (``py``, ``python-``, ``-dev``,
``2``...), or adds a deceptive word to it (``requests-secure``). A name that exists is suspect
only across a popularity gap: it is not itself popular and its neighbour is far more downloaded,
so ``urllib3`` beside ``urllib`` or ``pyyaml`` beside ``yaml`` is never flagged.

Candidates come from a symmetric-delete index (every popular name with up to two characters
deleted), so one lookup costs a few hundred dict probes, not a scan of the popular names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from modelplane.supplychain._names import fold
from modelplane.supplychain._snapshot import IndexSnapshot

#: prefixes and suffixes squatters add to (or drop from) a popular name, folded
AFFIXES_BEFORE = ("python", "py")
AFFIXES_AFTER = ("python", "py", "dev", "lib", "2", "3", "s", "js")
#: words whose addition to a popular name passes for an official companion package
DECEPTIVE_WORDS = frozenset(
    {"secure", "security", "safe", "fix", "fixed", "patch", "patched", "update", "updated"}
    | {"official", "latest", "new", "pro", "plus", "free", "crypto", "wallet", "verified"}
    | {"stable", "fast"}
)

_KEYBOARD = ("1234567890-", "qwertyuiop", "asdfghjkl", "zxcvbnm")


@dataclass(frozen=True)
class Suspicion:
    """Why a name looks like a popular one."""

    name: str  # the name checked, PEP 503 form
    target: str  # the popular name it resembles
    target_rank: int
    kind: str  # "edit", "separators", "affix" or "combosquat"
    distance: int  # edits between the folded names (0 for separators, affixes, words)
    detail: str  # what differs, for a person: "swapped 'ue'"

    @property
    def message(self) -> str:
        if self.kind == "edit":
            edits = "1 edit" if self.distance == 1 else f"{self.distance} edits"
            what = f"is {edits} from `{self.target}`"
        elif self.kind == "separators":
            what = f"differs from `{self.target}` only in separators or case"
        else:
            what = f"is `{self.target}` with {self.detail}"
        detail = f", {self.detail}" if self.kind == "edit" else ""
        return (
            f"`{self.name}` {what} (rank {self.target_rank}{detail}); did you mean {self.target}?"
        )


def max_distance(length: int) -> int:
    """Edits allowed from a popular name of this folded length: short names have many honest
    neighbours, so ``six`` and ``idna`` match only by folding and affixes."""
    if length <= 3:
        return 0
    return 1 if length <= 8 else 2


def _deletes(word: str, depth: int) -> set[str]:
    found = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        found |= frontier
    return found


def osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (Damerau: a swap of neighbours is one edit), or
    ``limit + 1`` as soon as it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[len(b)]


def _neighbours(a: str, b: str) -> bool:
    """Whether two keys touch on a QWERTY keyboard (each row sits half a key right of the one
    above: the row above touches columns i and i+1, the row below i-1 and i)."""
    for row_index, row in enumerate(_KEYBOARD):
        if a in row:
            i = row.index(a)
            near = row[max(0, i - 1) : i + 2]
            if row_index > 0:
                near += _KEYBOARD[row_index - 1][i : i + 2]
            if row_index + 1 < len(_KEYBOARD):
                near += _KEYBOARD[row_index + 1][max(0, i - 1) : i + 1]
            return b in near
    return False


def describe_edit(name: str, target: str) -> str:
    """What one edit changed, in a person's words ("swapped 'ue'", "omitted 'q'")."""
    if len(name) + 1 == len(target):
        i = next((k for k in range(len(name)) if name[k] != target[k]), len(name))
        return f"omitted {target[i]!r}"
    if len(name) == len(target) + 1:
        i = next((k for k in range(len(target)) if name[k] != target[k]), len(target))
        repeated = (i > 0 and name[i - 1] == name[i]) or name[i + 1 : i + 2] == name[i]
        return f"{'repeated' if repeated else 'added'} {name[i]!r}"
    diff = [k for k in range(len(name)) if name[k] != target[k]]
    if len(diff) == 2 and diff[1] == diff[0] + 1:
        return f"swapped {target[diff[0] : diff[1] + 1]!r}"
    if len(diff) != 1:
        return "two edits"
    was, now = target[diff[0]], name[diff[0]]
    if _neighbours(was, now):
        return f"{now!r} for {was!r}, keyboard neighbours"
    if bin(ord(was) ^ ord(now)).count("1") == 1:
        return f"{now!r} for {was!r}, one bit flipped"
    return f"{now!r} for {was!r}"


class TyposquatDetector:
    """Finds the popular name a name imitates, if any. Built once per snapshot."""

    def __init__(
        self,
        snapshot: IndexSnapshot,
        *,
        popular: int = 5000,
        trusted_rank: int = 5000,
        gap: float = 10.0,
    ) -> None:
        self.snapshot = snapshot
        self.trusted_rank = trusted_rank
        self.gap = gap
        self._targets = snapshot.top(popular)
        self._folded = [fold(name) for name, _ in self._targets]
        self._by_fold: dict[str, int] = {}
        self._by_delete: dict[str, list[int]] = {}
        self._by_stripped: dict[str, int] = {}
        for i, folded in enumerate(self._folded):
            self._by_fold.setdefault(folded, i)
            for key in _deletes(folded, max_distance(len(folded))):
                self._by_delete.setdefault(key, []).append(i)
            for stripped in _strip_affixes(folded):
                self._by_stripped.setdefault(stripped, i)

    def check(self, name: str, *, exists: bool) -> Suspicion | None:
        """The popular name ``name`` imitates, or None. A name in the snapshot is suspect only
        when it is not popular itself and its neighbour is ``gap`` times better ranked."""
        key = self.snapshot.key(name)
        rank = self.snapshot.rank(key) if exists else None
        if rank is not None and rank <= self.trusted_rank:
            return None
        # of every resemblance across the gap, the most popular target is the likeliest meant
        found = [
            s
            for s in self._suspicions(key)
            if s.target != key and (rank is None or rank >= self.gap * s.target_rank)
        ]
        # ties go to the first kind found: separators, edits, affixes, words
        ordered = min(enumerate(found), key=lambda e: (e[1].target_rank, e[0]), default=None)
        return ordered[1] if ordered else None

    def _suspicions(self, key: str) -> Iterable[Suspicion]:
        folded = fold(key)
        hit = self._by_fold.get(folded)
        if hit is not None:
            yield self._suspicion(key, hit, "separators", 0, "")
        yield from self._edits(key, folded)
        yield from self._affixes(key, folded)
        yield from self._combosquats(key)

    def _suspicion(self, key: str, i: int, kind: str, distance: int, detail: str) -> Suspicion:
        target, rank = self._targets[i]
        return Suspicion(key, target, rank, kind, distance, detail)

    def _edits(self, key: str, folded: str) -> Iterable[Suspicion]:
        seen: set[int] = set()
        best: tuple[int, int, int] | None = None  # (distance, rank, index)
        # two edits are allowed only from names of 9 characters or more (max_distance), so a
        # name shorter than 7 needs its single deletes alone
        for probe in _deletes(folded, 2 if len(folded) >= 7 else 1):
            for i in self._by_delete.get(probe, ()):
                if i in seen:
                    continue
                seen.add(i)
                target_fold = self._folded[i]
                limit = max_distance(len(target_fold))
                distance = osa_distance(folded, target_fold, limit)
                if 0 < distance <= limit:
                    candidate = (distance, self._targets[i][1], i)
                    best = candidate if best is None or candidate < best else best
        if best is not None:
            distance, _, i = best
            detail = describe_edit(folded, self._folded[i]) if distance == 1 else ""
            yield self._suspicion(key, i, "edit", distance, detail)

    def _affixes(self, key: str, folded: str) -> Iterable[Suspicion]:
        for stripped in _strip_affixes(folded):
            i = self._by_fold.get(stripped)
            if i is not None:
                extra = folded.replace(stripped, "", 1)
                yield self._suspicion(key, i, "affix", 0, f"{extra!r} added")
        i = self._by_stripped.get(folded)
        if i is not None:
            dropped = self._folded[i].replace(folded, "", 1)
            yield self._suspicion(key, i, "affix", 0, f"{dropped!r} dropped")

    def _combosquats(self, key: str) -> Iterable[Suspicion]:
        # a popular name with a deceptive word added; a companion with an honest word
        # (requests-toolbelt) is not one, and an invented one is found by its absence
        words = key.split("-")
        for cut in range(1, len(words)):
            for base, extra in ((words[:cut], words[cut:]), (words[cut:], words[:cut])):
                i = self._by_fold.get("".join(base))
                if i is not None and DECEPTIVE_WORDS.issuperset(extra):
                    yield self._suspicion(key, i, "combosquat", 0, f"{'-'.join(extra)!r} added")


def _strip_affixes(folded: str) -> list[str]:
    out = []
    for prefix in AFFIXES_BEFORE:
        if folded.startswith(prefix) and len(folded) - len(prefix) >= 4:
            out.append(folded[len(prefix) :])
    for suffix in AFFIXES_AFTER:
        if folded.endswith(suffix) and len(folded) - len(suffix) >= 4:
            out.append(folded[: -len(suffix)])
    return out

"""Pickled weights are refused by default; allowed, they are inspected by their opcodes (never
unpickled) and refused when they name a global outside the allow-list."""

from __future__ import annotations

import collections
import os
import pickle
import zipfile
from pathlib import Path

import pytest

from modelplane.serving import ArtifactError, ArtifactStore
from modelplane.supplychain import globals_of, unsafe_globals


class _RunsACommand:
    """What an attacker pickles: unpickling it calls os.system."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /tmp/modelplane-pickle-test",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_a_pickle_calling_os_system_is_found_without_unpickling_it(protocol: int) -> None:
    data = pickle.dumps({"w": _RunsACommand()}, protocol=protocol)
    names = globals_of(data)
    # os.system pickles as posix.system (or nt.system): the module it really lives in
    assert any(n.endswith(".system") for n in names), names


def test_an_allowed_pickle_with_os_system_is_refused_at_import_naming_the_global(
    tmp_path: Path,
) -> None:
    # given a folder with a malicious pytorch_model.bin (a zip holding archive/data.pkl)
    folder = tmp_path / "model"
    folder.mkdir()
    with zipfile.ZipFile(folder / "pytorch_model.bin", "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(_RunsACommand(), protocol=2))
    store = ArtifactStore(tmp_path / "home")
    # when it is imported with allow_pickle, then it is refused naming the global and the member
    with pytest.raises(ArtifactError) as caught:
        store.import_path(folder, allow_pickle=True)
    assert caught.value.reason == "UnsafePickle"
    assert "system" in caught.value.message
    assert "pytorch_model.bin:archive/data.pkl" in caught.value.message
    # and nothing was copied into the store
    assert not (tmp_path / "home" / "models" / "sha256").exists()


def test_a_state_dict_pickle_passes_the_allow_list(tmp_path: Path) -> None:
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps(collections.OrderedDict(w=[1.0, 2.0]), protocol=4))
    assert unsafe_globals(path) == []
    # and a global outside the list is named with its file
    path.write_bytes(pickle.dumps(eval, protocol=4))
    assert [(u.file, u.name) for u in unsafe_globals(path)] == [("weights.pkl", "builtins.eval")]


def test_inspection_does_not_run_the_pickle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    called: list[str] = []
    monkeypatch.setattr(os, "system", lambda cmd: called.append(cmd) or 0)
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    assert [u.name for u in unsafe_globals(path)] == ["os.system"]
    assert called == []

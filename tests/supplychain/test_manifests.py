"""Reading the files that name dependencies: requirements (with includes), pyproject, package.json."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from modelplane.supplychain import ManifestError, read, read_names


def test_requirements_are_parsed_with_specifiers_extras_markers_and_their_lines(
    tmp_path: Path,
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.txt").write_text("numpy>=1.26  # the arrays\n")
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# a comment\n"
        "-r sub/base.txt\n"
        "--index-url https://index.invalid/simple\n"
        "requests[socks]==2.32.3 ; python_version >= '3.10'\n"
        "pyyaml==6.0.2 \\\n"
        "    --hash=sha256:abc\n"
        "-e git+https://example.invalid/repo.git#egg=Flask_Thing\n"
        "./local/path\n"
    )
    deps = read(req)
    assert [(d.name, d.file, d.line) for d in deps] == [
        ("numpy", str(tmp_path / "sub" / "base.txt"), 1),
        ("requests", str(req), 4),
        ("pyyaml", str(req), 5),
        ("Flask_Thing", str(req), 7),
    ]
    requests = deps[1]
    assert requests.extras == ("socks",)
    assert requests.marker == 'python_version >= "3.10"'
    assert requests.pinned == "2.32.3"
    assert deps[0].pinned is None and deps[0].specifier == ">=1.26"


def test_an_include_cycle_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\nrequests\n")
    (tmp_path / "b.txt").write_text("-r a.txt\nnumpy\n")
    assert sorted(d.name for d in read(tmp_path / "a.txt")) == ["numpy", "requests"]


def test_a_line_that_is_not_a_requirement_names_its_file_and_line(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("requests\nnumpy >>= 1\n")
    with pytest.raises(ManifestError, match=rf"{req}:2: 'numpy >>= 1' is not a requirement"):
        read(req)
    with pytest.raises(ManifestError, match="no such file"):
        read(tmp_path / "missing.txt")


def test_pyproject_dependencies_and_optional_dependencies(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[project]\nname = "x"\ndependencies = [\n  "requests>=2",\n  "click",\n]\n'
        '[project.optional-dependencies]\ndev = ["pytest>=8"]\n'
    )
    deps = read(path)
    assert [(d.name, d.specifier, d.line) for d in deps] == [
        ("requests", ">=2", 4),
        ("click", "", 5),
        ("pytest", ">=8", 8),
    ]


def test_package_json_dependencies_and_dev_dependencies(tmp_path: Path) -> None:
    path = tmp_path / "package.json"
    path.write_text(
        json.dumps(
            {
                "name": "x",
                "dependencies": {"express": "4.19.2"},
                "devDependencies": {"jest": "^29"},
            },
            indent=2,
        )
    )
    deps = read(path)
    assert [(d.name, d.ecosystem, d.pinned) for d in deps] == [
        ("express", "npm", "4.19.2"),
        ("jest", "npm", None),
    ]
    assert deps[0].line == 4


def test_names_on_stdin_one_per_line() -> None:
    deps = read_names(io.StringIO("requests==2.0\n\n# nothing\nnumpy\n"))
    assert [(d.name, d.file, d.line, d.pinned) for d in deps] == [
        ("requests", "-", 1, "2.0"),
        ("numpy", "-", 4, None),
    ]


def test_a_pyproject_of_the_wrong_shape_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\noptional-dependencies = ["x"]\n')
    with pytest.raises(ManifestError, match="must be tables"):
        read(path)
    path.write_text("[project\n")
    with pytest.raises(ManifestError, match="not TOML"):
        read(path)

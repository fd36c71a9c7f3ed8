"""``modelplane audit deps`` and ``audit snapshot``: tables, JSON, SARIF and exit codes."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.cli._platform import run_cli

from modelplane.supplychain import IndexSnapshot, OnlineIndex, configured_index_url, shown

from .test_guard import write_osv


@pytest.fixture
def project(tmp_path: Path, snapshot_file: Path) -> Path:
    (tmp_path / "requirements.txt").write_text(
        "requests==2.31.0\nnumpy>=1.26\nflask-gpt-helper\nreqeusts\n"
    )
    return tmp_path


def test_deps_prints_a_table_and_exits_1_when_something_is_blocked(project: Path) -> None:
    result = run_cli("audit", "deps", str(project / "requirements.txt"))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].split() == ["PACKAGE", "VERSION", "VERDICT", "WHERE", "REASONS"]
    assert lines[1].split()[:3] == ["requests", "==2.31.0", "allow"]
    assert "did you mean requests?" in lines[4]
    assert lines[-1].startswith("4 dependencies: 2 allowed, 0 warned, 2 blocked")


def test_deps_exits_0_when_nothing_is_blocked_and_1_on_warnings_with_fail_on_warn(
    project: Path, snapshot_file: Path
) -> None:
    (project / "ok.txt").write_text("requests\nfresh-thing\n")
    args = ["audit", "deps", "--snapshot", str(snapshot_file), str(project / "ok.txt")]
    assert run_cli(*args, "--min-age-days", "100000").exit_code == 0
    assert run_cli(*args, "--min-age-days", "100000", "--fail-on", "warn").exit_code == 1
    assert run_cli(*args, "--min-age-days", "0", "--fail-on", "warn").exit_code == 0


def test_deps_json_has_a_verdict_per_dependency_and_the_reasons(project: Path) -> None:
    result = run_cli("audit", "deps", str(project / "requirements.txt"), "-o", "json")
    doc = json.loads(result.output)
    assert doc["verdict"] == "block" and doc["snapshotBuilt"] == "2026-12-07"
    by_name = {d["name"]: d for d in doc["dependencies"]}
    assert by_name["requests"]["rank"] == 6
    assert by_name["flask-gpt-helper"]["reasons"][0]["ruleId"] == "MPSC001"
    assert by_name["reqeusts"]["reasons"][0]["rule"] == "typosquat"


def test_deps_sarif_points_at_the_file_and_line_of_each_finding(project: Path) -> None:
    osv = write_osv(project / "all.zip")
    result = run_cli(
        "audit", "deps", str(project / "requirements.txt"), "--osv", str(osv), "-o", "sarif"
    )
    assert result.exit_code == 1
    sarif = json.loads(result.output)
    assert sarif["version"] == "2.1.0"
    (run,) = sarif["runs"]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert {"MPSC001", "MPSC002", "MPSC004"} <= set(rule_ids)
    found = {
        (r["ruleId"], r["level"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
        for r in run["results"]
    }
    assert found == {("MPSC004", "error", 1), ("MPSC001", "error", 3), ("MPSC002", "error", 4)}
    for r in run["results"]:
        assert rule_ids[r["ruleIndex"]] == r["ruleId"]
        location = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert location == str(project / "requirements.txt")


def test_deps_reads_names_on_stdin(snapshot_file: Path) -> None:
    result = run_cli(
        "audit", "deps", "--snapshot", str(snapshot_file), "-", input="requests\nnumpyy\n"
    )
    assert result.exit_code == 1
    assert "`numpyy` does not exist" in result.output and "did you mean numpy?" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "name at least one file"),
        (["missing.txt"], "missing.txt: no such file"),
        (["--snapshot", "nowhere.json", "requirements.txt"], "no such index snapshot"),
        (["--osv", "nowhere.zip", "requirements.txt"], "no such OSV database"),
        (["--fail-on", "never", "requirements.txt"], "'never' is not one of"),
    ],
)
def test_mistakes_are_usage_errors_with_exit_code_2(
    project: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(project)
    result = run_cli("audit", "deps", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_without_a_snapshot_deps_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODELPLANE_INDEX_SNAPSHOT", raising=False)
    (tmp_path / "r.txt").write_text("requests\n")
    result = run_cli("audit", "deps", "r.txt")
    assert result.exit_code == 2
    assert "no index snapshot: give --snapshot PATH" in result.output


def test_snapshot_builds_the_file_deps_reads(tmp_path: Path, names_file: Path) -> None:
    out = tmp_path / "snap.json.gz"
    result = run_cli("audit", "snapshot", str(names_file), "-o", str(out), "--built", "2026-01-02")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {out}: 18 names, 15 ranked, built 2026-01-02"
    (tmp_path / "r.txt").write_text("requests\n")
    check = run_cli("audit", "deps", "--snapshot", str(out), str(tmp_path / "r.txt"))
    assert check.exit_code == 0
    assert "built 2026-01-02" in check.output


def test_snapshot_reports_a_bad_list_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "names.csv"
    bad.write_text("requests,2011-02,first\n")
    result = run_cli("audit", "snapshot", str(bad), "-o", str(tmp_path / "s.json"))
    assert result.exit_code == 2
    assert f"{bad}:1: rank 'first' is not a whole number" in result.output


def test_the_online_index_is_asked_in_pep_691_json_and_cached(tmp_path: Path) -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        assert request.headers["accept"] == "application/vnd.pypi.simple.v1+json"
        if request.url.path == "/simple/requests/":
            files = [{"filename": "requests-2.0.tar.gz", "upload-time": "2011-02-14T10:00:00Z"}]
            return httpx.Response(
                200,
                json={"meta": {"api-version": "1.1"}, "name": "requests", "files": files},
                headers={"content-type": "application/vnd.pypi.simple.v1+json"},
            )
        return httpx.Response(404)

    client = httpx.Client(transport=httpx.MockTransport(answer))
    index = OnlineIndex("https://user:secret@index.invalid/simple", tmp_path / "cache", client)
    found = index("Requests")
    assert found is not None and str(found.released) == "2011-02-14"
    assert index("reqeusts") is None
    assert index("requests") is not None  # from the cache
    assert asked == ["/simple/requests/", "/simple/reqeusts/"]
    assert shown(index.url) == "https://index.invalid/simple/"


def test_the_index_is_the_one_pip_is_configured_with(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.invalid/simple")
    assert configured_index_url() == "https://mirror.invalid/simple"


def test_an_npm_snapshot_checks_package_json_with_npm_names(tmp_path: Path) -> None:
    # given an npm index where lodash.merge and lodash-merge would be two packages
    names = tmp_path / "npm.csv"
    names.write_text("lodash,2012-04,1,MIT\nexpress,2010-12,2,MIT\nlodash.merge,2013-09,40,MIT\n")
    snap = tmp_path / "npm-snapshot.json"
    made = run_cli("audit", "snapshot", "--npm", str(names), "-o", str(snap))
    assert made.exit_code == 0, made.output
    (tmp_path / "package.json").write_text(
        json.dumps(
            {
                "dependencies": {
                    "express": "4.19.2",
                    "lodash.merge": "4.6.2",
                    "lodash-merge": "1.0.0",
                },
                "devDependencies": {"lodahs": "1.0.0"},
            }
        )
    )
    result = run_cli(
        "audit", "deps", "--snapshot", str(snap), str(tmp_path / "package.json"), "-o", "json"
    )
    verdicts = {d["name"]: d["verdict"] for d in json.loads(result.output)["dependencies"]}
    assert verdicts == {
        "express": "allow",
        "lodash.merge": "allow",
        "lodash-merge": "block",
        "lodahs": "block",
    }


class _Index(http.server.BaseHTTPRequestHandler):
    """A PEP 691 index over loopback that knows one project, requests."""

    def do_GET(self) -> None:
        if self.path != "/simple/requests/":
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps(
            {
                "meta": {"api-version": "1.1"},
                "name": "requests",
                "files": [
                    {"filename": "requests-0.2.0.tar.gz", "upload-time": "2011-02-14T00:00:00Z"}
                ],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def index_url() -> Iterator[str]:
    """The URL of a PEP 691 index served on loopback for the test."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/simple/"
    finally:
        server.shutdown()
        server.server_close()


def test_online_asks_the_index_pip_is_configured_with(
    tmp_path: Path, snapshot_file: Path, index_url: str
) -> None:
    (tmp_path / "r.txt").write_text("requests\nnumpy\n")
    home = tmp_path / "home"
    result = run_cli(
        "audit",
        "deps",
        "--online",
        "--snapshot",
        str(snapshot_file),
        str(tmp_path / "r.txt"),
        env={"MODELPLANE_HOME": str(home), "PIP_INDEX_URL": index_url},
    )
    # numpy is in the snapshot but not in this index: the index is what answers
    assert result.exit_code == 1
    assert "`numpy` does not exist in the package index" in result.output
    assert (home / "cache" / "simple-index" / "requests.json").is_file()


def test_snapshot_from_the_index_keeps_the_names_it_knows_with_their_first_upload(
    tmp_path: Path, index_url: str
) -> None:
    names = tmp_path / "names.csv"
    names.write_text("requests,,6\nflask-gpt-helper,,\n")
    out = tmp_path / "snap.json"
    env = {"MODELPLANE_HOME": str(tmp_path / "home"), "PIP_INDEX_URL": index_url}
    result = run_cli("audit", "snapshot", "--from-index", str(names), "-o", str(out), env=env)
    assert result.exit_code == 0, result.output
    assert "flask-gpt-helper does not exist in the package index; left out" in result.output
    snap = IndexSnapshot.load(out)
    requests = snap.get("requests")
    assert snap.names == ["requests"]
    assert requests is not None and (str(requests.released), requests.rank) == ("2011-02-14", 6)


def test_online_without_a_snapshot_checks_existence_and_says_what_it_cannot(
    tmp_path: Path, index_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.txt").write_text("requests\nreqeusts\n")
    env = {"MODELPLANE_HOME": str(tmp_path / "home"), "PIP_INDEX_URL": index_url}
    result = run_cli("audit", "deps", "--online", "r.txt", "-o", "json", env=env)
    assert result.exit_code == 1
    assert "no index snapshot: typosquats are not looked for" in result.stderr
    doc = json.loads(result.stdout)
    assert [d["verdict"] for d in doc["dependencies"]] == ["allow", "block"]

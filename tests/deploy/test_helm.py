"""The Helm chart of ``render kubernetes --helm``: its templates give back the rendered objects.

There is no ``helm`` binary on these machines, so the templates are rendered here by substituting
the only expressions the chart uses (``.Release.Namespace``, ``.Values.<path>``, ``| quote``);
the test fails on any other expression, so a richer template would have to bring ``helm template``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from tests.deploy._k8s import problems

from modelplane.api import load_paths
from modelplane.cli import cli
from modelplane.deploy import render

ROOT = Path(__file__).parents[2]
_EXPRESSION = re.compile(r"\{\{\s*(\.Release\.Namespace|\.Values\.[\w.]+)(\s*\|\s*quote)?\s*\}\}")


def _template(text: str, namespace: str, values: dict[str, Any]) -> str:
    def substitute(match: re.Match[str]) -> str:
        path, quote = match.groups()
        if path == ".Release.Namespace":
            value: Any = namespace
        else:
            value = values
            for part in path.removeprefix(".Values.").split("."):
                value = value[part]
        return json.dumps(str(value)) if quote else str(value)

    rendered = _EXPRESSION.sub(substitute, text)
    assert "{{" not in rendered, "the chart uses an expression this test cannot render"
    return rendered


def _chart(tmp_path: Path, *args: str) -> Path:
    folder = tmp_path / "chart"
    result = CliRunner().invoke(
        cli,
        ["render", "kubernetes", "-f", str(ROOT / "examples" / "quickstart"), "-o",
         str(tmp_path / "out"), "--helm", str(folder), *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder


def _objects(folder: Path, namespace: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    objects = list(yaml.safe_load_all((folder / "crds" / "modelplane.yaml").read_text()))
    for template in sorted((folder / "templates").glob("*.yaml")):
        text = _template(template.read_text(), namespace, values)
        objects.extend(o for o in yaml.safe_load_all(text) if o)
    return objects


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def test_the_chart_renders_the_same_objects_as_render_kubernetes(tmp_path: Path) -> None:
    folder = _chart(tmp_path, "--image", "registry.example/modelplane:1.2")
    chart = yaml.safe_load((folder / "Chart.yaml").read_text())
    values = yaml.safe_load((folder / "values.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "modelplane"
    assert values["image"] == "registry.example/modelplane:1.2"
    from_chart = _objects(folder, "platform", values)
    rendered = render(
        load_paths([ROOT / "examples" / "quickstart"]),
        namespace="platform",
        image="registry.example/modelplane:1.2",
    )
    # the same objects, less the Namespace (`helm install --create-namespace` makes it)
    expected = [o for o in rendered.all() if o["kind"] != "Namespace"]
    assert sorted(from_chart, key=_key) == sorted(expected, key=_key)


def test_chart_values_reach_the_objects_and_they_stay_valid(tmp_path: Path) -> None:
    folder = _chart(tmp_path)
    values = yaml.safe_load((folder / "values.yaml").read_text())
    values["gateway"]["replicas"] = 7
    values["image"] = "modelplane:custom"
    objects = _objects(folder, "ml-platform", values)
    gateway = next(o for o in objects if o["metadata"]["name"] == "modelplane-gateway"
                   and o["kind"] == "Deployment")  # fmt: skip
    assert gateway["spec"]["replicas"] == 7
    assert gateway["metadata"]["namespace"] == "ml-platform"
    assert gateway["spec"]["template"]["spec"]["containers"][0]["image"] == "modelplane:custom"
    assert [p for obj in objects for p in problems(obj)] == []

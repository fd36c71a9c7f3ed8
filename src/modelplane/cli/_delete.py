"""``modelplane delete KIND NAME...`` or ``delete -f PATH``: remove objects.

An object with finalizers is only marked for deletion; the controllers named in its finalizers
clean up and then it goes. ``--wait`` follows it (by watch) until it is gone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import click

from modelplane.api import KindInfo, kind_info
from modelplane.api.errors import ModelplaneError, NotFound, Timeout
from modelplane.cli._apply import read_manifests
from modelplane.cli._client import JSON, Client, later_version
from modelplane.cli._context import Settings, connection_options, settings
from modelplane.cli._kinds import qualified, select
from modelplane.cli._options import manifests_option, positive_option
from modelplane.cli._output import echo_error


def wait_until_gone(client: Client, info: KindInfo, last_seen: JSON, timeout: float) -> None:
    """Return once the object ``last_seen`` describes no longer exists; Timeout after ``timeout`` s.

    Watches from the version of ``last_seen``, so a removal between the delete and the watch is
    not missed; a new object of the same name (another uid) does not count as the old one.
    """
    meta = last_seen.get("metadata") or {}
    name, uid = str(meta.get("name", "")), meta.get("uid")
    namespace = str(meta.get("namespace") or "")
    version = str(meta.get("resourceVersion") or "")
    deadline = time.monotonic() + timeout

    def gone() -> bool:
        try:
            current = client.get(info, namespace, name)
        except NotFound:
            return True
        return bool(uid) and (current.get("metadata") or {}).get("uid") != uid

    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            finalizers = ", ".join(meta.get("finalizers") or []) or "none"
            raise Timeout(
                f"still there after {timeout:g}s (finalizers: {finalizers});"
                " the controllers that own them may be stopped; check `modelplane describe"
                f" {info.singular} {name}`"
            )
        for event in client.watch(
            info,
            namespace if info.namespaced else None,
            resource_version=version,
            field_selector=f"metadata.name={name}",
            timeout_seconds=max(1, math.ceil(left)),
        ):
            obj = event.get("object") or {}
            obj_meta = obj.get("metadata") or {}
            version = later_version(version, obj_meta.get("resourceVersion"))
            if event.get("type") == "DELETED" and (not uid or obj_meta.get("uid") == uid):
                return
        if gone():
            return


def _delete_one(
    client: Client,
    info: KindInfo,
    namespace: str,
    name: str,
    *,
    wait: bool,
    timeout: float,
    ignore_not_found: bool,
) -> bool:
    """Delete (and maybe wait for) one object, printing what happened; True on success."""
    target = qualified(info, name)
    try:
        last = client.delete(info, namespace, name)
        if wait and (last.get("metadata") or {}).get("deletionTimestamp"):
            wait_until_gone(client, info, last, timeout)
    except NotFound as exc:
        if ignore_not_found:
            return True
        echo_error(str(exc))
        return False
    except ModelplaneError as exc:
        echo_error(f"{target}: {exc}")
        return False
    click.echo(f"{target} deleted")
    return True


def _from_files(paths: Sequence[str], s: Settings) -> tuple[list[tuple[KindInfo, str, str]], int]:
    """(kind, namespace, name) of every object in the manifests; and how many could not be read."""
    manifests, failures = read_manifests(paths)
    for failure in failures:
        echo_error(f"{failure.target}: {failure.error}")
    targets: list[tuple[KindInfo, str, str]] = []
    bad = len(failures)
    for manifest in manifests:
        obj = manifest.obj
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        name = meta.get("name")
        try:
            info = kind_info(str(obj.get("apiVersion")), str(obj.get("kind")))
        except ModelplaneError as exc:
            echo_error(f"{manifest.where}: {exc}")
            bad += 1
            continue
        if not isinstance(name, str) or not name:
            echo_error(f"{manifest.where}: the {info.kind} has no metadata.name")
            bad += 1
            continue
        namespace = str(meta.get("namespace") or s.namespace) if info.namespaced else ""
        targets.append((info, namespace, name))
    return targets, bad


@click.command()
@click.argument("args", nargs=-1, metavar="KIND NAME... | KIND/NAME...")
@manifests_option("Delete the objects named in these manifests (files, folders or -).")
@click.option("-l", "--selector", metavar="SELECTOR", help="Delete the objects with these labels.")
@click.option(
    "--all", "all_", is_flag=True, help="Delete every object of the kind in the namespace."
)
@click.option("--wait", is_flag=True, help="Wait until each object is gone (finalizers done).")
@positive_option("--timeout", 60.0, "Seconds --wait waits per object.")
@click.option("--ignore-not-found", is_flag=True, help="An object that does not exist is no error.")
@connection_options()
@click.pass_context
def delete(
    ctx: click.Context,
    args: tuple[str, ...],
    paths: tuple[str, ...],
    selector: str | None,
    all_: bool,
    wait: bool,
    timeout: float,
    ignore_not_found: bool,
) -> None:
    """Delete objects by name, by label, or as named in manifests.

    Prints `KIND.GROUP/NAME deleted` per object; exits 1 if any could not be deleted.
    """
    s = settings()
    if paths and args:
        raise click.UsageError("name objects or give -f PATH, not both")
    failed = 0
    with s.client() as client:
        if paths:
            targets, failed = _from_files(paths, s)
        else:
            targets = []
            for info, names in select(args).targets:
                namespace = s.namespace if info.namespaced else ""
                if names:
                    if selector or all_:
                        raise click.UsageError("name objects or use -l/--all, not both")
                    targets += [(info, namespace, n) for n in names]
                    continue
                if not selector and not all_:
                    raise click.UsageError(
                        f"name the {info.plural} to delete, or select them with -l SELECTOR or"
                        " --all"
                    )
                items, _ = client.list_all(
                    info, namespace if info.namespaced else None, label_selector=selector
                )
                targets += [(info, namespace, str(o["metadata"]["name"])) for o in items]
                if not items:
                    click.echo(f"No {info.plural} found.", err=True)
        for info, namespace, name in targets:
            ok = _delete_one(
                client,
                info,
                namespace,
                name,
                wait=wait,
                timeout=timeout,
                ignore_not_found=ignore_not_found,
            )
            failed += not ok
    if failed:
        ctx.exit(1)

"""Model artifacts signed with model-signing (an ECDSA key made here, offline): the commands, the
node agent and the Model controller verifying before any load, the import bringing the
signature along."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.control._wait import wait_until

from modelplane.cli import cli
from modelplane.control import get_condition
from modelplane.serving import ArtifactStore, ModelController, NodeAgent
from modelplane.store import Store
from modelplane.supplychain import SignatureError, generate_key, sign, verify


def _model_folder(root: Path) -> Path:
    folder = root / "tiny"
    folder.mkdir(parents=True)
    header = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
    (folder / "model.safetensors").write_bytes(
        len(header).to_bytes(8, "little") + header + b"\0" * 16
    )
    (folder / "config.json").write_text('{"model_type": "tiny"}\n')
    return folder


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_signed_folder_verifies_and_one_changed_byte_is_named_with_both_digests(
    tmp_path: Path,
) -> None:
    # given a model folder signed with a key made by `models keygen`
    folder = _model_folder(tmp_path)
    runner = CliRunner()
    made = runner.invoke(cli, ["models", "keygen", str(tmp_path / "key.pem")])
    assert made.exit_code == 0, made.output
    signed = runner.invoke(cli, ["models", "sign", str(folder), "--key", str(tmp_path / "key.pem")])
    assert signed.exit_code == 0, signed.output
    assert (tmp_path / "tiny.sig").is_file()  # beside the artifact

    # when it is verified with the public key, then exit 0
    ok = runner.invoke(cli, ["models", "verify", str(folder), "--key", str(tmp_path / "key.pub")])
    assert ok.exit_code == 0, ok.output
    assert "2 files as signed" in ok.output

    # when one byte of the weights changes, then exit 1 naming the file and both digests
    expected = verify(folder, tmp_path / "key.pub")["model.safetensors"]
    _flip_one_byte(folder / "model.safetensors")
    bad = runner.invoke(cli, ["models", "verify", str(folder), "--key", str(tmp_path / "key.pub")])
    assert bad.exit_code == 1
    assert "model.safetensors: expected " + expected in bad.output
    with pytest.raises(SignatureError) as caught:
        verify(folder, tmp_path / "key.pub")
    assert caught.value.reason == "ArtifactTampered"
    assert [f.name for f in caught.value.files] == ["model.safetensors"]
    assert caught.value.files[0].expected == expected
    assert (
        caught.value.files[0].found.startswith("sha256:")
        and caught.value.files[0].found != expected
    )


def test_a_signature_does_not_verify_with_another_key_and_a_missing_one_says_how_to_sign(
    tmp_path: Path,
) -> None:
    folder = _model_folder(tmp_path)
    generate_key(tmp_path / "a.pem")
    generate_key(tmp_path / "b.pem")
    runner = CliRunner()
    missing = runner.invoke(
        cli, ["models", "verify", str(folder), "--key", str(tmp_path / "a.pub")]
    )
    assert missing.exit_code == 1 and "modelplane models sign" in missing.output
    sign(folder, tmp_path / "a.pem")
    other = runner.invoke(cli, ["models", "verify", str(folder), "--key", str(tmp_path / "b.pub")])
    assert other.exit_code == 1
    assert "does not verify with" in other.output
    assert "Traceback" not in other.output


def test_a_single_file_is_signed_and_a_change_names_the_file(tmp_path: Path) -> None:
    weights = _model_folder(tmp_path) / "model.safetensors"
    generate_key(tmp_path / "k.pem")
    assert sign(weights, tmp_path / "k.pem") == tmp_path / "tiny" / "model.safetensors.sig"
    assert verify(weights, tmp_path / "k.pub") == {".": verify(weights, tmp_path / "k.pub")["."]}
    _flip_one_byte(weights)
    with pytest.raises(SignatureError) as caught:
        verify(weights, tmp_path / "k.pub")
    assert caught.value.message.count("model.safetensors: expected sha256:") == 1


def _signed_import(tmp_path: Path) -> tuple[ArtifactStore, dict[str, Any], Path]:
    """A folder signed and imported with its signature; the version `models import` prints."""
    folder = _model_folder(tmp_path / "src")
    generate_key(tmp_path / "key.pem")
    sign(folder, tmp_path / "key.pem")
    runner = CliRunner()
    home = tmp_path / "home"
    out = runner.invoke(cli, ["models", "import", str(folder), "--home", str(home)])
    assert out.exit_code == 0, out.output
    import yaml

    manifest = yaml.safe_load(out.stdout)
    version = manifest["spec"]["versions"][0]
    assert version["signature"].startswith("sha256:")
    return ArtifactStore(home), manifest, home


def test_the_node_agent_loads_a_signed_model_and_refuses_it_with_one_byte_changed(
    store: Store, tmp_path: Path
) -> None:
    # given a signed model imported with its signature, and the operator's public key
    _artifacts, model, home = _signed_import(tmp_path)
    version = model["spec"]["versions"][0]
    agent = NodeAgent(store, "node-a", home, model_signing_key=tmp_path / "key.pub")
    # when the agent prepares the version, then it is verified and served from the store
    path, digest = agent._artifact(model, version)
    assert digest == version["digest"] and (path / "model.safetensors").is_file()

    # when one byte of the stored weights changes, then it is refused naming the file
    _flip_one_byte(path / "model.safetensors")
    with pytest.raises(Exception) as refused:
        agent._artifact(model, version)
    assert getattr(refused.value, "reason", None) == "ArtifactTampered"
    message = str(refused.value)
    assert "model.safetensors: expected sha256:" in message and ", found sha256:" in message


def test_a_signed_version_is_refused_when_the_operator_trusts_no_key(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELPLANE_MODEL_SIGNING_KEY", raising=False)
    _artifacts, model, home = _signed_import(tmp_path)
    agent = NodeAgent(store, "node-a", home)
    with pytest.raises(Exception) as refused:
        agent._artifact(model, model["spec"]["versions"][0])
    assert getattr(refused.value, "reason", None) == "SignatureUntrusted"
    assert "--model-signing-key" in str(refused.value)


def test_the_model_controller_reports_a_verified_signature_and_a_tampered_file(
    store: Store, tmp_path: Path
) -> None:
    # given a signed model imported with its signature and a controller trusting the key
    artifacts, model, _home = _signed_import(tmp_path)
    model["metadata"]["namespace"] = "team-a"
    controller = ModelController(
        store,
        verify_period=0.1,
        artifact_root=artifacts.root,
        model_signing_key=tmp_path / "key.pub",
    )
    controller.start()
    try:
        store.create(model)
        ready = wait_until(lambda: _ready(store, "True"), what="Ready True")
        assert ready["reason"] == "DigestVerified"
        status = store.get("Model", "team-a", "model")["status"]
        assert "signature sha256:" in json.dumps(status["versions"])
        # when one stored byte changes, then the condition names the file
        stored = artifacts.get(model["spec"]["versions"][0]["digest"])
        assert stored is not None
        _flip_one_byte(stored.path / "model.safetensors")
        cond = wait_until(lambda: _ready(store, "False"), what="Ready False")
        assert cond["reason"] == "ArtifactTampered"
        assert "model.safetensors: expected sha256:" in cond["message"]
    finally:
        assert controller.stop(10)


def _ready(store: Store, status: str) -> dict[str, Any] | None:
    obj = store.get("Model", "team-a", "model")
    cond = get_condition(obj.get("status"), "Ready")
    return cond if cond and cond["status"] == status else None


def test_a_signature_that_is_not_a_digest_is_refused_when_written() -> None:
    from pydantic import ValidationError

    from modelplane.api import Model

    with pytest.raises(ValidationError) as caught:
        Model.model_validate(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Model",
                "metadata": {"name": "m"},
                "spec": {
                    "versions": [
                        {
                            "name": "v1",
                            "source": "m.safetensors",
                            "format": "safetensors",
                            "digest": "sha256:" + "a" * 64,
                            "signature": "oci://registry/m.sig",
                        }
                    ]
                },
            }
        )
    assert "modelplane models import" in str(caught.value)


def _certificate_pair(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a code-signing leaf it issued (ECDSA P-256): (ca.pem, leaf.pem, leaf-key.pem)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} signer")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (
        tmp_path / f"{name}-ca.pem",
        tmp_path / f"{name}-leaf.pem",
        tmp_path / f"{name}-key.pem",
    )
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def test_certificate_mode_verifies_against_the_ca_offline_and_refuses_another_ca(
    tmp_path: Path,
) -> None:
    # given a folder signed with a code-signing certificate issued by "acme" CA
    folder = _model_folder(tmp_path)
    ca, leaf, key = _certificate_pair(tmp_path, "acme")
    other_ca, _leaf, _key = _certificate_pair(tmp_path, "other")
    runner = CliRunner()
    certificate = ["--certificate", str(leaf), "--chain", str(ca)]
    signed = runner.invoke(cli, ["models", "sign", str(folder), "--key", str(key), *certificate])
    assert signed.exit_code == 0, signed.output
    # when it is verified trusting acme's CA, then exit 0; trusting another CA, exit 1
    ok = runner.invoke(cli, ["models", "verify", str(folder), "--ca", str(ca)])
    assert ok.exit_code == 0, ok.output
    other = runner.invoke(cli, ["models", "verify", str(folder), "--ca", str(other_ca)])
    assert other.exit_code == 1 and "does not verify with" in other.output
    # and a changed byte names the file, as in key mode
    _flip_one_byte(folder / "config.json")
    bad = runner.invoke(cli, ["models", "verify", str(folder), "--ca", str(ca)])
    assert bad.exit_code == 1 and "config.json: expected sha256:" in bad.output
    # and neither --key nor --ca is a usage error
    assert runner.invoke(cli, ["models", "verify", str(folder)]).exit_code == 2


def test_the_operators_key_reaches_the_node_agent_from_up_through_the_environment(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given `up --model-signing-key PUB`, which sets MODELPLANE_MODEL_SIGNING_KEY for its process
    from modelplane.serving import MODEL_SIGNING_KEY_ENV

    _artifacts, model, home = _signed_import(tmp_path)
    monkeypatch.setenv(MODEL_SIGNING_KEY_ENV, str(tmp_path / "key.pub"))
    # when a node agent made without a key prepares the signed version, then it verifies it
    agent = NodeAgent(store, "node-a", home)
    assert agent.signatures.trusted_key == tmp_path / "key.pub"
    path, _digest = agent._artifact(model, model["spec"]["versions"][0])
    assert (path / "model.safetensors").is_file()

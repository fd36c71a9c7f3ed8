"""Model verification benchmark: how fast a signed artifact is verified (GB/s), beside
``sha256sum`` of the same file, in one run.

It writes a safetensors-like file (an 8-byte header length, a JSON header naming one tensor, then
the tensor's bytes: 1 MiB of random data repeated, as hashing speed does not depend on content),
signs it with a fresh ECDSA P-256 key, then times, over the same file in the page cache:
``sha256sum FILE``, the artifact digest (``hashlib``, what the node agent checks on every load)
and ``modelplane.supplychain.verify`` (model-signing: the signature, then every file hashed again).
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_MIB = 1 << 20


def write_weights(path: Path, size: int) -> None:
    """A safetensors-like file of about ``size`` bytes (one U8 tensor)."""
    body = max(size - 128, _MIB)
    header = json.dumps({"w": {"dtype": "U8", "shape": [body], "data_offsets": [0, body]}})
    encoded = header.encode().ljust(120)
    block = os.urandom(_MIB)
    with open(path, "wb") as out:
        out.write(len(encoded).to_bytes(8, "little") + encoded)
        for _ in range(body // _MIB):
            out.write(block)
        out.write(block[: body % _MIB])


def _timed(run: Any) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(folder: Path, size: int) -> dict[str, Any]:
    """Write, sign and verify a model of ``size`` bytes under ``folder``; the figures."""
    from modelplane.serving import artifact_digest
    from modelplane.supplychain import generate_key, sign, verify

    model = folder / "model"
    model.mkdir()
    weights = model / "model.safetensors"
    write_weights(weights, size)
    (model / "config.json").write_text('{"model_type": "bench"}\n')
    total = sum(p.stat().st_size for p in model.iterdir())
    public = generate_key(folder / "key.pem")
    sign_s = _timed(lambda: sign(model, folder / "key.pem"))
    sha256sum = shutil.which("sha256sum")
    tool_s = (
        _timed(lambda: subprocess.run([sha256sum, str(weights)], check=True, capture_output=True))
        if sha256sum
        else None
    )
    digest_s = _timed(lambda: artifact_digest(model))
    verify_s = _timed(lambda: verify(model, public))
    return {
        "benchmark": "model-verify",
        "bytes": total,
        "cache": "warm (the file was just written)",
        "sign_s": round(sign_s, 3),
        "verify_s": round(verify_s, 3),
        "verify_gbps": round(total / verify_s / 1e9, 3),
        "digest_gbps": round(total / digest_s / 1e9, 3),
        "sha256sum_gbps": round(total / tool_s / 1e9, 3) if tool_s else None,
        "verify_vs_sha256sum": round(tool_s / verify_s, 2) if tool_s else None,
        "cpus": os.cpu_count(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python benchmarks/model_verify.py [--size-mb N] [--quick]``."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/model_verify.py",
        description="Verification throughput of a signed model (GB/s) beside sha256sum;"
        " prints one JSON line.",
    )
    parser.add_argument("--size-mb", type=int, default=2048, help="model size in MiB (2048)")
    parser.add_argument("--quick", action="store_true", help="256 MiB, for a smoke test")
    parser.add_argument("--dir", type=Path, help="where the model is written (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.size_mb < 1:
        parser.error("--size-mb must be at least 1")
    size = (256 if args.quick else args.size_mb) * _MIB
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        result = measure(Path(scratch), size)
    print(json.dumps(result), flush=True)
    return 0

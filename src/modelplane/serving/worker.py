"""``python -m modelplane.serving.worker``: one replica of a model, served over loopback HTTP.

::

    python -m modelplane.serving.worker --model-dir DIR --digest sha256:... --port 0 \\
        --port-file FILE [--device cpu|cuda] [--name NAME] [--home HOME] [--allow-pickle] \\
        [--batching continuous|rounds] [--max-batch N] [--max-adapters N]

Before loading, the artifact at ``--model-dir`` (a safetensors folder, or a ``.gguf`` file which is
converted once into ``$MODELPLANE_HOME/models``) is hashed and must equal ``--digest``; pickle-based
weights are refused unless ``--allow-pickle``. Exit status 3 means the artifact was refused (the
reason is the last line on stderr), 2 a bad command line. The device defaults to CUDA when
``CUDA_VISIBLE_DEVICES`` names a device and torch sees one, else the CPU.

``--batching continuous`` (the default) lets requests join and leave the running batch between
decode steps and reuses cached prompt prefixes (:mod:`modelplane.serving._continuous`);
``--batching rounds`` batches at round boundaries (a request arriving mid-round waits for it to
end). docs/serving.md compares them.

LoRA adapters are registered by the node agent at run time (:mod:`modelplane.serving._adapters`),
found in the artifact store under ``--home`` by digest; at most ``--max-adapters`` are resident.
The agent's token for those routes comes in the environment (``MODELPLANE_WORKER_TOKEN``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from modelplane.serving._adapters import DEFAULT_CAPACITY, WORKER_TOKEN_ENV, AdapterSet
from modelplane.serving._app import create_worker_app
from modelplane.serving._artifacts import (
    ArtifactStore,
    detect_format,
    refuse_pickle,
    verify,
)
from modelplane.serving._errors import ArtifactError
from modelplane.serving._serve import announce, bind, exit_with_parent, serve_app

if TYPE_CHECKING:
    from modelplane.serving._transformers import TransformersEngine

EXIT_ARTIFACT_REFUSED = 3
#: the schedulers ``--batching`` chooses from, the default first
BATCHING = ("continuous", "rounds")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m modelplane.serving.worker", description=__doc__)
    p.add_argument("--model-dir", required=True, help="safetensors folder or .gguf file")
    p.add_argument("--digest", required=True, help="sha256:<hex> the artifact must hash to")
    p.add_argument("--name", default=None, help="model name reported by /v1/models")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", default=None, help="write the bound port here once serving")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None)
    p.add_argument("--home", default=os.environ.get("MODELPLANE_HOME", ".modelplane"))
    p.add_argument(
        "--max-batch",
        type=_positive,
        default=8,
        help="most sequences generated together (default 8)",
    )
    p.add_argument(
        "--batching",
        choices=BATCHING,
        default=BATCHING[0],
        help="continuous: requests join and leave the running batch between decode steps, with"
        " prefix reuse (default); rounds: a batch runs until all its requests finish",
    )
    p.add_argument(
        "--max-adapters",
        type=_positive,
        default=DEFAULT_CAPACITY,
        help=f"most LoRA adapters resident at once (default {DEFAULT_CAPACITY})",
    )
    p.add_argument("--allow-pickle", action="store_true")
    p.add_argument("--log-level", default="warning")
    return p


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def default_device() -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible and visible != "-1":
        import torch

        if torch.cuda.is_available():
            return "cuda"
    return "cpu"


def load_artifact(model_dir: Path, digest: str, home: str, allow_pickle: bool) -> Path:
    """The folder to load for the artifact at ``model_dir``, verified against ``digest``."""
    verify(model_dir, digest)
    refuse_pickle(model_dir, allow_pickle)
    if detect_format(model_dir) != "gguf":
        return model_dir
    store = ArtifactStore(home)
    gguf = store.import_path(model_dir if model_dir.is_file() else next(model_dir.glob("*.gguf")))
    converted = store.convert_gguf(gguf)
    verify(converted.path, converted.digest)
    return converted.path


def load_engine(
    folder: Path, *, batching: str = "continuous", device: str = "cpu", max_batch: int = 8
) -> TransformersEngine:
    """The transformers engine for the model in ``folder``: ``continuous`` or ``rounds``
    batching (see the module docstring); torch is imported here, not before."""
    from modelplane.serving._continuous import ContinuousEngine
    from modelplane.serving._transformers import TransformersEngine

    if batching not in BATCHING:
        raise ValueError(f"batching must be one of {', '.join(BATCHING)}, not {batching!r}")
    kind = ContinuousEngine if batching == "continuous" else TransformersEngine
    return kind(folder, device=device, max_batch=max_batch)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    exit_with_parent()
    try:
        folder = load_artifact(Path(args.model_dir), args.digest, args.home, args.allow_pickle)
    except ArtifactError as exc:
        print(f"artifact refused ({exc.reason}): {exc.message}", file=sys.stderr)
        return EXIT_ARTIFACT_REFUSED
    device = args.device or default_device()
    engine = load_engine(folder, batching=args.batching, device=device, max_batch=args.max_batch)
    name = args.name or Path(args.model_dir).name
    adapters = AdapterSet(engine, args.home, capacity=args.max_adapters)
    token = os.environ.get(WORKER_TOKEN_ENV, "")
    app = create_worker_app(
        engine, model_name=name, digest=args.digest, adapters=adapters, token=token
    )
    sock = bind(args.host, args.port)
    announce(args.port_file, sock.getsockname()[1])
    try:
        serve_app(app, sock, log_level=args.log_level)
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

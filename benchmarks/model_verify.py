"""Model verification benchmark: a signed safetensors-like model verified (GB/s), beside
``sha256sum`` of the same file, in one run.

    python benchmarks/model_verify.py            # 2 GiB, the documented figure
    python benchmarks/model_verify.py --quick    # 256 MiB, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.model_verify`` and
docs/benchmarks.md.
"""

from modelplane.bench.model_verify import main

if __name__ == "__main__":
    raise SystemExit(main())

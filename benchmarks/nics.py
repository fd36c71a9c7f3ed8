"""NIC alignment benchmark: GPU+NIC claims on one PCIe root, beside first-fit GPUs then NICs.

    python benchmarks/nics.py              # full run (64 nodes, 2,000 claims)
    python benchmarks/nics.py --quick      # 16 nodes, 300 claims: a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.nics`` and docs/benchmarks.md.
"""

from modelplane.bench.nics import main

if __name__ == "__main__":
    raise SystemExit(main())

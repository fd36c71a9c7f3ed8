"""MCP gateway benchmark: the added latency of tools/call through /mcp over a direct call.

    python benchmarks/mcp_gateway.py            # full run
    python benchmarks/mcp_gateway.py --quick    # few calls, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.mcp_gateway`` and
docs/benchmarks.md.
"""

from modelplane.bench.mcp_gateway import main

if __name__ == "__main__":
    raise SystemExit(main())

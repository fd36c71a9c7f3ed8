"""A small distributed job: each replica all-reduces (sums) a tensor over torch.distributed/gloo.

The job runner sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, as torchrun does, so
``init_process_group`` reads its rendezvous from the environment. Rank r contributes
``[r + 1, 10 * (r + 1)]``; every replica prints the sum as one JSON line (its log).
``FAIL_RANK``: that rank exits with status 3 instead (to see a gang fail and restart).
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist


def main() -> int:
    rank = int(os.environ["RANK"])
    if os.environ.get("FAIL_RANK") == str(rank):
        print(f"rank {rank}: failing on purpose (FAIL_RANK)", flush=True)
        return 3
    dist.init_process_group("gloo")
    try:
        tensor = torch.tensor([rank + 1.0, 10.0 * (rank + 1)])
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        world = dist.get_world_size()
        print(json.dumps({"rank": rank, "worldSize": world, "sum": tensor.tolist()}), flush=True)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

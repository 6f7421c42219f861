"""One rank of tests/test_distributed.py: train, then dump this rank's weights and memory bank.

    python -m torch.distributed.run --nproc_per_node 2 tests/ddp_worker.py CONFIG_JSON OUT_DIR
"""

import json
import os
import sys

import torch

from arc_efe import distributed
from arc_efe.config import TrainConfig
from arc_efe.train import fit, setup

cfg = TrainConfig.from_dict(json.loads(open(sys.argv[1]).read()))
run = setup(cfg)
fit(run)
params = {n: p.detach().clone() for n, p in run.agent.named_parameters()}
params.update({f"solver2.{n}": p.detach().clone() for n, p in run.solver2.named_parameters()})
torch.save({"params": params, "keys": run.bank.keys, "meta": run.bank.meta,
            "world": distributed.world_size()},
           os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))
distributed.close()

"""One rank of tests/training/test_distributed.py: train, then dump this rank's weights and memory bank.

    python -m torch.distributed.run --nproc_per_node 2 tests/training/ddp_worker.py CONFIG_JSON OUT_DIR
"""

import json
import os
import sys

import torch

from arc_efe.model import distributed
from arc_efe.model.sharding import full_optimizer_state, full_state, is_sharded
from arc_efe.saved.checkpoint import find_checkpoint, load_checkpoint
from arc_efe.saved.config import TrainConfig
from arc_efe.training.run import setup

cfg = TrainConfig.from_dict(json.loads(open(sys.argv[1]).read()))
run = setup(cfg)
run.fit()
params = {n: t.clone() for n, t in full_state(dict(run.policy.named_parameters())).items()}  # --fsdp: gathered
params.update({f"solver2.{n}": p.detach().clone() for n, p in run.solver2.named_parameters()})
sharded = sum(is_sharded(p) for p in run.policy.parameters())
# load the last checkpoint back over zeroed weights (into shards under --fsdp): all restored?
moments = {i: {k: v.clone() for k, v in s.items()} for i, s in full_optimizer_state(run.optimizer)["state"].items()}
with torch.no_grad():
    for t in [*run.policy.parameters(), *(v for s in run.optimizer.state.values() for v in s.values())]:
        t.zero_()
load_checkpoint(find_checkpoint(run.run_dir), run.policy.backbone, run.optimizer, run.scheduler, run.solver2)
again, moments_again = full_state(dict(run.policy.named_parameters())), full_optimizer_state(run.optimizer)["state"]
restored = (all(torch.equal(t, params[n]) for n, t in again.items())
            and all(torch.equal(v, moments_again[i][k]) for i, s in moments.items() for k, v in s.items()))
torch.save({"params": params, "keys": run.bank.keys, "meta": run.bank.meta,
            "world": distributed.world_size(),
            "sharded": sharded, "restored": restored},
           os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))
distributed.close()  # after a barrier: no rank tears the group down while another still uses it

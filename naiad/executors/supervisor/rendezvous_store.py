"""The rendezvous store of an elastic job: the TCPStore torchrun's agents meet in.

torchrun's c10d rendezvous keeps its state in a TCPStore that one of the agents would
host; losing that agent's node would end the job. So the supervisor (on Ray, the job's
coordinator) hosts it in this small process of its own, and every agent joins as a
client (``is_host=0``). Run by path with the job's Python (it imports only torch);
prints its port, then serves until it is ended (it dies with its parent).
"""

import datetime
import sys
import time

from torch.distributed import TCPStore  # type: ignore[attr-defined]

if __name__ == "__main__":
    store = TCPStore(
        sys.argv[1],
        0,
        is_master=True,
        multi_tenant=True,
        wait_for_workers=False,
        timeout=datetime.timedelta(seconds=300),
    )
    print(store.port, flush=True)
    while True:
        time.sleep(3600)

# Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import os

# System tests fork Airflow components from this process, which also serves fake Dataproc over gRPC.
# With gRPC's fork support on, a fork while its threads run can abort the child before it execs (seen:
# a dag processor died with SIGABRT, "epoll_wait error: Bad file descriptor"). The children exec a
# new interpreter at once and need nothing from gRPC's fork handlers. Read when grpc is first imported,
# so it is set here, before any test module imports it.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

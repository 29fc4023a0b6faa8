"""Multi-process launch that also works without CUDA.

detectron2's ``launch`` (v0.6 and current) initialises NCCL and pins one GPU per process, so it cannot run
several processes on a CPU-only machine. With CUDA available we defer to it unchanged; without CUDA we spawn
the same worker layout on the gloo backend.
"""
import logging
import socket
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import launch as d2_launch
from detectron2.utils import comm

__all__ = ["launch"]

_DEFAULT_TIMEOUT = timedelta(minutes=30)


def launch(main_func, num_processes_per_machine, num_machines=1, machine_rank=0, dist_url=None, args=()):
    """Run ``main_func(*args)`` in ``num_processes_per_machine * num_machines`` processes.

    Args:
        main_func: the function each process runs.
        num_processes_per_machine (int): GPUs per machine with CUDA; CPU processes per machine without.
        num_machines (int), machine_rank (int), dist_url (str): as detectron2's ``launch``
            (``dist_url="auto"`` picks a free local port; single machine only).
    """
    if torch.cuda.is_available():
        d2_launch(main_func, num_processes_per_machine, num_machines, machine_rank, dist_url, args=args)
        return
    world_size = num_machines * num_processes_per_machine
    if world_size == 1:
        main_func(*args)
        return
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("--dist-url auto only works on a single machine; give tcp://HOST:PORT")
        dist_url = f"tcp://127.0.0.1:{_free_port()}"
    logging.getLogger(__name__).info(f"No CUDA: launching {world_size} CPU processes on gloo ({dist_url})")
    mp.spawn(
        _gloo_worker,
        nprocs=num_processes_per_machine,
        args=(main_func, world_size, num_processes_per_machine, machine_rank, dist_url, args),
        daemon=False,
    )


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gloo_worker(local_rank, main_func, world_size, procs_per_machine, machine_rank, dist_url, args):
    global_rank = machine_rank * procs_per_machine + local_rank
    dist.init_process_group(
        backend="gloo", init_method=dist_url, world_size=world_size, rank=global_rank, timeout=_DEFAULT_TIMEOUT
    )
    # comm.get_local_rank()/get_local_size() need the per-machine group. Newer detectron2 has a helper for
    # it; v0.6's launcher builds it inline, which we mirror.
    if hasattr(comm, "create_local_process_group"):
        comm.create_local_process_group(procs_per_machine)
    else:
        for machine in range(world_size // procs_per_machine):
            ranks = list(range(machine * procs_per_machine, (machine + 1) * procs_per_machine))
            group = dist.new_group(ranks)
            if machine == machine_rank:
                comm._LOCAL_PROCESS_GROUP = group
    comm.synchronize()
    try:
        main_func(*args)
    finally:
        dist.destroy_process_group()

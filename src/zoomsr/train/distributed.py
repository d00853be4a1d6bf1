"""Data-parallel training under ``torchrun``: PyTorch's process group, DDP and SyncBatchNorm.

``torchrun`` starts one process per device and tells each its place through environment
variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
:func:`setup` joins the process group from them (``gloo`` on CPU, ``nccl`` on CUDA); without
them, or with a world of one, every helper here is a no-op and training is the plain
single-process loop. What the trainer needs to know: the global batch ``data.batch`` is split
evenly over the processes, each process computes the gradient of its share, DDP averages the
gradients, and only rank 0 writes files and prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

from zoomsr.errors import ZoomsrError


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        raise ZoomsrError(f"environment variable {name}='{value}' is not an integer") from None


def launched() -> bool:
    """Started by ``torchrun`` (or another launcher) as one of several processes."""
    return _env_int("WORLD_SIZE", 1) > 1


def is_active() -> bool:
    """A process group is up with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return dist.get_rank() if is_active() else _env_int("RANK", 0)


def world() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_active() else _env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """Rank 0: the one process that writes checkpoints and logs."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group when launched by torchrun; returns this process's device.

    CUDA runs take GPU ``LOCAL_RANK`` of their node and use ``nccl``; CPU runs use ``gloo``.
    Idempotent, and a no-op for a single process.
    """
    if not launched():
        return device
    if not dist.is_available():
        raise ZoomsrError("this PyTorch build has no torch.distributed; run one process")
    if device.type == "cuda":
        if device.index is None:
            if local_rank() >= torch.cuda.device_count():
                raise ZoomsrError(
                    f"LOCAL_RANK {local_rank()} but this node has {torch.cuda.device_count()} "
                    "GPU(s); use --nproc_per_node <= the GPU count"
                )
            device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        for name in ("MASTER_ADDR", "MASTER_PORT", "RANK"):
            if name not in os.environ:
                raise ZoomsrError(f"WORLD_SIZE is set but {name} is not: launch with torchrun")
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://")
    return device


def barrier() -> None:
    if is_active():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (all ranks together)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def per_rank_batch(batch: int) -> int:
    """This process's share of the global batch ``batch``."""
    n = world()
    if batch % n:
        raise ZoomsrError(
            f"data.batch {batch} is not divisible by the {n} processes; set data.batch to a "
            f"multiple of {n} (it is the global batch, split over the processes)"
        )
    return batch // n


def mean_of_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each value averaged over the processes (every rank must pass the same keys)."""
    if not is_active() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {**values, **dict(zip(keys, (t / world()).tolist(), strict=True))}


def broadcast_from_main(make: Callable[[], object]) -> object:
    """``make()`` run on rank 0 only and its result sent to every rank (e.g. a checkpoint that
    only rank 0's machine has). A :class:`ZoomsrError` raised by ``make`` reaches every rank."""
    if not is_active():
        return make()
    payload: list[object] = [None]
    if is_main():
        try:
            payload = [("ok", make())]
        except ZoomsrError as err:
            payload = [("error", str(err))]
    dist.broadcast_object_list(payload, src=0)
    status, value = payload[0]  # type: ignore[misc]
    if status == "error":
        raise ZoomsrError(str(value))
    return value


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers -> SyncBatchNorm, so batch statistics are those of the global batch.

    PyTorch's SyncBatchNorm runs on GPUs only: CPU (gloo) runs keep per-process statistics.
    """
    if not is_active() or device.type != "cuda":
        return module
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


class Step(nn.Module):
    """Networks trained together, run by ``fn`` as this module's forward so that DDP sees the
    forward pass and averages every gradient of the backward that follows."""

    def __init__(self, networks: dict[str, nn.Module], fn: Callable):
        super().__init__()
        self.networks = nn.ModuleDict(networks)
        self.fn = fn

    def forward(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


def data_parallel(
    networks: dict[str, nn.Module],
    fn: Callable,
    device: torch.device,
    unused_parameters: bool = False,
) -> Callable:
    """``fn`` with DDP gradient averaging over the parameters of ``networks`` (``fn`` itself
    when not distributed). ``unused_parameters``: some of them may get no gradient in a step
    on some rank (random pastes), which DDP then has to look for."""
    if not is_active():
        return fn
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(
        Step(networks, fn),
        device_ids=ids,
        output_device=ids[0] if ids else None,
        find_unused_parameters=unused_parameters,
    )

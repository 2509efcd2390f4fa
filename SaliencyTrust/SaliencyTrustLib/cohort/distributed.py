"""Process group of a cohort run: one process, or ``torchrun`` over any number of processes / nodes.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``).
When ``WORLD_SIZE > 1`` we join the default ``torch.distributed`` process group (``gloo`` on CPU,
``nccl`` when CUDA is available) and use it only for barriers: the results themselves travel
through the results folder (one database per rank), which must therefore be on a filesystem every
node sees. Each rank takes its share of the plan (:func:`SaliencyTrustLib.cohort.units.shard`),
and rank 0 assembles the results after a barrier.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Optional


@dataclass
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size``; ``local_rank`` picks the GPU."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None
    _initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the one that prepares the folder and assembles the results)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def device(self, requested: str = "auto") -> str:
        """The torch device string for this rank: ``cuda:<local_rank>`` when CUDA is usable."""
        import torch

        if requested == "auto":
            return f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"
        if requested == "cuda":
            return f"cuda:{self.local_rank}"
        return requested

    def barrier(self) -> None:
        """Wait for every rank (no-op for one process)."""
        if self.distributed:
            import torch.distributed as dist

            if self.backend == "nccl":
                import torch

                dist.barrier(device_ids=[torch.cuda.current_device()])
            else:
                dist.barrier()

    def all_ok(self, ok: bool) -> bool:
        """True when ``ok`` is True on every rank (a failed rank stops the others cleanly)."""
        if not self.distributed:
            return ok
        import torch
        import torch.distributed as dist

        device = f"cuda:{self.local_rank}" if self.backend == "nccl" else "cpu"
        flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def close(self) -> None:
        """Leave the process group if this context joined it."""
        if self._initialized_here:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._initialized_here = False


def init_distributed(device: str = "auto", timeout_hours: float = 48.0) -> DistributedContext:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and join the process group when there are several.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``: decides the backend (``nccl`` only for CUDA).
        timeout_hours: barrier timeout; ranks with more work may reach the final barrier much later
            than others, so the default is long.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world_size}")
    context = DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank)
    if world_size == 1:
        return context
    import torch
    import torch.distributed as dist

    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    context.backend = backend
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(hours=timeout_hours))
        context._initialized_here = True
    return context

"""Data-parallel ERM training and embedding extraction with PyTorch's own machinery.

:func:`launch` starts the workers the way ``torchrun`` does (``torch.distributed``'s
elastic launcher: the same rendezvous settings, one agent per node), runs a function in
each and returns what the workers return. Workers train with
``DistributedDataParallel`` (gloo on CPU, NCCL on CUDA) or extract a contiguous shard
of each split and gather the shards in sample order.

Equivalence to one process: a global batch of ``batch_size`` samples (the same
permutation on every rank) is cut into ``world_size`` equal slices, one per rank, and
DDP averages the ranks' gradients, so each optimiser step sees the same samples and
the same mean loss as the single-process step; only the summation order of the
gradient all-reduce differs, plus the at most ``world_size - 1`` samples of an epoch's
last batch that do not divide evenly (dropped) and BatchNorm statistics, which are
per rank. Extraction shards follow whole batches, so every sample is embedded in the
same batch as in one process and the cache does not depend on the process count.
"""

from __future__ import annotations

import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)

RDZV_BACKENDS = ("c10d", "static", "etcd-v2")


@dataclass(frozen=True)
class DistributedSettings:
    """``erm_training.distributed``: the ``torchrun`` settings.

    ``nproc_per_node`` workers on each of ``nnodes`` nodes; several nodes meet at
    ``rdzv_endpoint`` (``host:port`` of one of them) under a shared ``rdzv_id``.
    One node and one process (the default) trains in the calling process.
    """

    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_backend: str = "c10d"
    rdzv_endpoint: str = "127.0.0.1:0"  # one node: a free local port, like `torchrun --standalone`
    rdzv_id: str | None = None
    node_rank: int | None = None  # the static backend only; c10d assigns ranks at the rendezvous
    rdzv_timeout_s: int = 900

    @classmethod
    def from_config(cls, config: dict | None) -> "DistributedSettings":
        config = dict(config or {})
        unknown = sorted(set(config) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"erm_training.distributed has unknown key(s) {unknown}; expected {sorted(cls.__dataclass_fields__)}.")
        settings = cls(**config)
        for name in ("nproc_per_node", "nnodes", "rdzv_timeout_s"):
            value = getattr(settings, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"erm_training.distributed.{name} must be a positive integer; got {value!r}.")
        if settings.rdzv_backend not in RDZV_BACKENDS:
            raise ValueError(f"erm_training.distributed.rdzv_backend must be one of {list(RDZV_BACKENDS)}; "
                             f"got {settings.rdzv_backend!r}.")
        if settings.nnodes > 1 and (settings.rdzv_id is None or settings.rdzv_endpoint.endswith(":0")):
            raise ValueError("several nodes need a shared erm_training.distributed.rdzv_id and an rdzv_endpoint "
                             f"host:port that every node reaches; got rdzv_id={settings.rdzv_id!r}, "
                             f"rdzv_endpoint={settings.rdzv_endpoint!r}.")
        if settings.rdzv_backend == "static" and settings.node_rank is None and settings.nnodes > 1:
            raise ValueError("rdzv_backend 'static' needs erm_training.distributed.node_rank on every node.")
        return settings

    @property
    def enabled(self) -> bool:
        return self.nproc_per_node * self.nnodes > 1


def launch(settings: DistributedSettings, stage: str, function, *args):
    """Run ``function(*args)`` in ``nproc_per_node`` workers on this node (joining the other nodes).

    Each ``stage`` (training, extraction) is its own rendezvous, ``<rdzv_id>-<stage>``, so a
    finished one is never joined again. Returns the value of the lowest global rank that
    runs on this node; every worker function here returns the same value on every rank.
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    rdzv_configs = {"timeout": settings.rdzv_timeout_s}
    if settings.node_rank is not None:
        rdzv_configs["rank"] = settings.node_rank
    config = LaunchConfig(
        min_nodes=settings.nnodes, max_nodes=settings.nnodes, nproc_per_node=settings.nproc_per_node,
        run_id=f"{settings.rdzv_id or uuid.uuid4().hex}-{stage}", rdzv_backend=settings.rdzv_backend,
        rdzv_endpoint=settings.rdzv_endpoint, rdzv_configs=rdzv_configs, max_restarts=0, start_method="spawn",
        local_addr="127.0.0.1" if settings.nnodes == 1 else None,
    )
    logger.info("launching %d x %d workers (%s rendezvous at %s)", settings.nnodes, settings.nproc_per_node,
                settings.rdzv_backend, settings.rdzv_endpoint)
    results = elastic_launch(config, function)(*args)
    returned = [rank for rank in sorted(results) if results[rank] is not None]
    if not returned:
        raise RuntimeError(f"no worker of {function.__name__} on this node returned a result.")
    return results[returned[0]]


@dataclass
class ProcessGroup:
    """A worker's view of the job: its rank, the world size and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DistributedDataParallel (gradients averaged over ranks at each backward)."""
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)

    def local_order(self, order: np.ndarray, batch_size: int) -> np.ndarray:
        """This rank's slice of every global batch of ``order``, concatenated: batches of
        ``batch_size // world_size`` of the result are this rank's part of each global batch."""
        return local_batch_order(order, batch_size, self.rank, self.world_size)

    def shard(self, n_samples: int, batch_size: int) -> slice:
        """A contiguous block of whole batches (see :func:`batch_aligned_shard`)."""
        return batch_aligned_shard(n_samples, batch_size, self.rank, self.world_size)

    def sum(self, values) -> np.ndarray:
        """Element-wise sum of ``values`` (floats) over all ranks."""
        tensor = torch.as_tensor(np.asarray(values, dtype=np.float64), device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.cpu().numpy()

    def gather(self, value) -> list:
        """``value`` of every rank, in rank order (pickled; for arrays that fit in one process's memory)."""
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered


def local_batch_order(order: np.ndarray, batch_size: int, rank: int, world_size: int) -> np.ndarray:
    """Split each global batch of ``order`` into ``world_size`` equal slices and keep slice ``rank``.

    A last batch that does not divide by ``world_size`` loses its remainder (at most
    ``world_size - 1`` samples) so every rank takes the same number of steps.
    """
    if batch_size % world_size:
        raise ValueError(f"erm_training.batch_size ({batch_size}) must be divisible by the number of processes "
                         f"({world_size}): each global batch is split evenly across them.")
    parts = []
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        batch = batch[: len(batch) - len(batch) % world_size]
        if len(batch):
            parts.append(batch.reshape(world_size, -1)[rank])
    return np.concatenate(parts) if parts else order[:0]


def batch_aligned_shard(n_samples: int, batch_size: int, rank: int, world_size: int) -> slice:
    """Rows of rank ``rank``: whole batches, as even as possible, contiguous, in rank order (so the
    concatenation of the shards is the split in its original order)."""
    n_batches = -(-n_samples // batch_size)
    first, last = (n_batches * rank) // world_size, (n_batches * (rank + 1)) // world_size
    return slice(min(first * batch_size, n_samples), min(last * batch_size, n_samples))


@contextmanager
def process_group(device: str):
    """Join the job started by :func:`launch` (rank and rendezvous come from the launcher's environment)."""
    from neurontune.models.devices import resolve_device

    local_rank, local_world = int(os.environ["LOCAL_RANK"]), int(os.environ["LOCAL_WORLD_SIZE"])
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        resolved = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(resolved)
    else:  # share the cores instead of oversubscribing them, as torchrun's OMP_NUM_THREADS=1 does
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    try:
        yield ProcessGroup(dist.get_rank(), dist.get_world_size(), local_rank, resolved)
    finally:
        dist.destroy_process_group()


def train_erm_distributed(settings: DistributedSettings, config: dict, train_inputs, train_labels, val_inputs, val_labels,
                          **options) -> tuple[nn.Module, list[dict]]:
    """:func:`neurontune.models.training.train_erm` on ``settings``' workers; same arguments, same result type."""
    from neurontune.models.backbones import build_model

    if options.get("mode", "finetune") != "finetune":
        raise ValueError(f"distributed training is for mode 'finetune'; mode {options['mode']!r} trains only the linear "
                         "head on embeddings extracted once: run it in one process (erm_training.distributed.nproc_per_node: 1).")
    device = options.pop("device")
    state_dict, history = launch(settings, "erm", _train_worker, config, train_inputs, train_labels, val_inputs, val_labels,
                                 str(device), options)
    model = build_model(config)
    model.load_state_dict(state_dict)
    return model.eval(), history


def _train_worker(config, train_inputs, train_labels, val_inputs, val_labels, device, options):
    from neurontune.models.training import train_erm

    with process_group(device) as group:
        model, history = train_erm(config, train_inputs, train_labels, val_inputs, val_labels, device=group.device,
                                   group=group, **options)
        # every rank holds the same weights (DDP); the local leader hands them to the launching process
        return (model.state_dict(), history) if group.local_rank == 0 else None


def embed_splits_distributed(settings: DistributedSettings, checkpoint: dict, inputs: dict[str, np.ndarray],
                             batch_size: int, device) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (embeddings, logits)}`` of every split, each split sharded over the workers by whole batches."""
    return launch(settings, "extraction", _embed_worker, checkpoint, inputs, batch_size, str(device))


def _embed_worker(checkpoint, inputs, batch_size, device):
    from neurontune.models.backbones import model_from_checkpoint
    from neurontune.models.batching import embed_and_predict

    with process_group(device) as group:
        model = model_from_checkpoint(checkpoint).to(group.device)
        merged = {}
        for split, split_inputs in inputs.items():
            rows = group.shard(len(split_inputs), batch_size)
            if rows.stop > rows.start:
                shard = embed_and_predict(model, split_inputs[rows], batch_size, group.device)
            else:  # fewer batches than workers: this one has nothing to embed
                shard = (np.empty((0, model.head.in_features), np.float32), np.empty((0, model.head.out_features), np.float32))
            shards = group.gather(shard)
            merged[split] = tuple(np.concatenate([part[index] for part in shards]) for index in range(2))
        return merged if group.local_rank == 0 else None

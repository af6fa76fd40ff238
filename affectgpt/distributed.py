"""Accelerate and DeepSpeed plumbing for the training recipe: the Accelerator from the launcher's
environment, DeepSpeed's "auto" entries filled from the Hydra trainer config, the optimizer (or
DeepSpeed's placeholder), and gathering per-rank objects."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig


def make_accelerator(cfg: DictConfig):
    """An Accelerator from the launcher's environment (``accelerate launch --config_file ...``), or with
    a DeepSpeed plugin from ``trainer.deepspeed`` (a JSON file) for a plain ``python train.py``.
    Returns it and whether DeepSpeed drives the model. Collectives time out after
    ``trainer.collective_timeout_s``, so a rank that dies cannot leave the others waiting forever."""
    import os
    from datetime import timedelta

    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin, DistributedDataParallelKwargs, InitProcessGroupKwargs

    t = cfg.trainer
    plugin = None
    if t.deepspeed:
        if not Path(t.deepspeed).is_file():
            raise FileNotFoundError(f"trainer.deepspeed={t.deepspeed}: no such DeepSpeed config file")
        if "RANK" not in os.environ:  # single process without a launcher: DeepSpeed would look for MPI
            os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                              MASTER_PORT=os.environ.get("MASTER_PORT") or str(_free_port()))
        plugin = DeepSpeedPlugin(hf_ds_config=str(t.deepspeed))
    ds = plugin is not None or os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    # cpu=True on a GPU-less machine is what makes Accelerate see torchrun's processes (MULTI_CPU, gloo).
    cpu = (cfg.device == "cpu" or not torch.cuda.is_available()) and not ds
    acc = Accelerator(mixed_precision=t.mixed_precision, cpu=cpu, deepspeed_plugin=plugin,
                      gradient_accumulation_steps=t.grad_accum if ds else 1,
                      kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=t.collective_timeout_s)),
                                       DistributedDataParallelKwargs(find_unused_parameters=t.find_unused_parameters)])
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if acc.num_processes != launched:
        raise RuntimeError(f"the launcher started {launched} processes but Accelerate sees {acc.num_processes} "
                           f"({acc.distributed_type}); every process would train alone and write the same files")
    if ds:
        fill_deepspeed_auto(acc.state.deepspeed_plugin.deepspeed_config, t, acc.num_processes)
    return acc, ds


def fill_deepspeed_auto(ds_config: dict, t: DictConfig, world: int) -> None:
    """The Hydra trainer config drives DeepSpeed's batch, accumulation and clipping ("auto" entries)."""
    values = {"train_micro_batch_size_per_gpu": t.batch_size, "gradient_accumulation_steps": t.grad_accum,
              "gradient_clipping": float(t.grad_clip or 0.0), "train_batch_size": t.batch_size * t.grad_accum * world}
    for key, value in values.items():
        if ds_config.get(key, "auto") == "auto":
            ds_config[key] = value


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_optimizer(groups: list[dict], t: DictConfig, accelerator, device: str):
    """AdamW (fused on CUDA). When the DeepSpeed config defines the optimizer, a placeholder that
    DeepSpeed replaces with its own, built on the same parameter groups and learning rates."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None and "optimizer" in plugin.deepspeed_config:
        from accelerate.utils import DummyOptim

        return DummyOptim(groups, lr=t.lr, weight_decay=t.weight_decay)
    fused = torch.cuda.is_available() and device != "cpu"
    return torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8, **({"fused": True} if fused else {}))


def zero_stage(accelerator) -> int:
    plugin = accelerator.state.deepspeed_plugin
    return 0 if plugin is None else int(plugin.zero_stage)


def gather_objects(accelerator, obj) -> list:
    """Every rank's ``obj``, in rank order (picklable objects; one process: ``[obj]``)."""
    if accelerator.num_processes == 1:
        return [obj]
    out = [None] * accelerator.num_processes
    torch.distributed.all_gather_object(out, obj)
    return out

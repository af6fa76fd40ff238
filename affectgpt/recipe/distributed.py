"""Accelerate and DeepSpeed plumbing for the training recipe.

``make_parallel(cfg)`` returns the one object the training loop talks to: ``Parallel`` (one process,
DDP or multi-CPU gloo through Accelerate) or ``DeepSpeedParallel`` (DeepSpeed's engine through
Accelerate's plugin). They differ only in how a step's gradients are accumulated, stepped and
saved; everything else (the collective, gathering objects, the model build) is shared.

ZeRO-3 and the model build: when Accelerate selects a ZeRO-3 plugin it registers the DeepSpeed
config with transformers, whatever ``zero3_init_flag`` says, and transformers then builds every
``from_pretrained`` / ``from_config`` model under ``deepspeed.zero.Init``. That draws a different
random stream, so the adapters and LoRA (initialised after the LLM) started from other values than
in plain training: the old 1779.7 vs 1784.5 first-step loss. ``Parallel.building()`` hides the
registration while the model is built unless ``zero3_init_flag`` is true, so ZeRO-3 partitions
exactly the model plain training would train.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DeepSpeedPlugin, DistributedDataParallelKwargs, DummyOptim, InitProcessGroupKwargs
from omegaconf import DictConfig
from transformers.integrations import deepspeed as hf_ds

from affectgpt.core.errors import RunError, first_line
from affectgpt.recipe.checkpoint import load_deepspeed_state, load_optimizer_scheduler, save_deepspeed_state

log = logging.getLogger("affectgpt.train")


def make_accelerator(cfg: DictConfig):
    """An Accelerator from the launcher's environment (``accelerate launch --config_file ...``), or with
    a DeepSpeed plugin from ``trainer.deepspeed`` (a JSON file) for a plain ``python train.py``.
    Returns it and whether DeepSpeed drives the model. Collectives time out after
    ``trainer.collective_timeout_s``, so a rank that dies cannot leave the others waiting forever."""
    t = cfg.trainer
    plugin = None
    if t.deepspeed:
        if not Path(t.deepspeed).is_file():
            raise FileNotFoundError(f"trainer.deepspeed={t.deepspeed}: no such DeepSpeed config file")
        if "RANK" not in os.environ:  # single process without a launcher: DeepSpeed would look for MPI
            os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                              MASTER_PORT=os.environ.get("MASTER_PORT") or str(_free_port()))
        # As conf/accelerate/deepspeed_zero3.yaml: the model is built whole, then partitioned by prepare().
        plugin = DeepSpeedPlugin(hf_ds_config=str(t.deepspeed), zero3_init_flag=False)
    ds = plugin is not None or os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    # cpu=True on a GPU-less machine is what makes Accelerate see torchrun's processes (MULTI_CPU, gloo).
    cpu = (cfg.device == "cpu" or not torch.cuda.is_available()) and not ds
    try:
        acc = Accelerator(mixed_precision=t.mixed_precision, cpu=cpu, deepspeed_plugin=plugin,
                          gradient_accumulation_steps=t.grad_accum if ds else 1,
                          kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=t.collective_timeout_s)),
                                           DistributedDataParallelKwargs(find_unused_parameters=t.find_unused_parameters)])
    except RuntimeError as e:
        if ds and "Error building extension" in str(e):
            raise RunError(deepspeed_build_failure(e)) from e
        raise
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if acc.num_processes != launched:
        raise RuntimeError(f"the launcher started {launched} processes but Accelerate sees {acc.num_processes} "
                           f"({acc.distributed_type}); every process would train alone and write the same files")
    if ds:
        fill_deepspeed_auto(acc.state.deepspeed_plugin.deepspeed_config, t, acc.num_processes)
    return acc, ds


def deepspeed_build_failure(exc: BaseException) -> str:
    """Why DeepSpeed could not compile its CPU ops (it does on first use, with torch's cpp_extension)."""
    where = [p for p in (sys.prefix, os.environ.get("TORCH_EXTENSIONS_DIR", "")) if " " in p]
    if where:  # cpp_extension writes the include and library paths unquoted into its build file
        return (f"DeepSpeed cannot compile its CPU ops under a path with a space ({where[0]}): install the virtual "
                f"environment, and set TORCH_EXTENSIONS_DIR, under paths without spaces")
    return (f"DeepSpeed could not compile its CPU ops (a C++ compiler and Python's headers are needed): "
            f"{first_line(exc)}")


def fill_deepspeed_auto(ds_config: dict, t: DictConfig, world: int) -> None:
    """The Hydra trainer config drives DeepSpeed's batch, accumulation and clipping ("auto" entries)."""
    values = {"train_micro_batch_size_per_gpu": t.batch_size, "gradient_accumulation_steps": t.grad_accum,
              "gradient_clipping": float(t.grad_clip or 0.0), "train_batch_size": t.batch_size * t.grad_accum * world}
    for key, value in values.items():
        if ds_config.get(key, "auto") == "auto":
            ds_config[key] = value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_optimizer(groups: list[dict], t: DictConfig, accelerator, device: str):
    """AdamW (fused on CUDA). When the DeepSpeed config defines the optimizer, a placeholder that
    DeepSpeed replaces with its own, built on the same parameter groups and learning rates."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None and "optimizer" in plugin.deepspeed_config:
        return DummyOptim(groups, lr=t.lr, weight_decay=t.weight_decay)
    # Fused on CUDA; elsewhere the multi-tensor (foreach) step: the same numbers as the per-tensor loop
    # (measured: max difference 0.0 after 105 steps) at 1.7x its speed on the tiny model's 180 tensors.
    fused = torch.cuda.is_available() and device != "cpu"
    return torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8, **({"fused": True} if fused else {"foreach": True}))


def make_parallel(cfg: DictConfig) -> Parallel:
    acc, ds = make_accelerator(cfg)
    return DeepSpeedParallel(acc) if ds else Parallel(acc)


class Parallel:
    """One process, DDP, or multi-CPU gloo: what the training loop needs from the launcher."""

    deepspeed = False

    def __init__(self, accelerator):
        self.accelerator = accelerator
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        self.is_main, self.device = accelerator.is_main_process, accelerator.device

    @property
    def zero_stage(self) -> int:
        return 0

    @contextmanager
    def building(self):
        """Around the model's construction (see the module docstring)."""
        yield

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks: one collective (none with one process)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        return self.accelerator.reduce(t, "sum").tolist() if self.world > 1 else t.tolist()

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order (picklable objects; one process: ``[obj]``)."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def accumulating(self, model, last: bool):
        """Around one micro-batch: DDP reduces gradients only on the step's last one."""
        return nullcontext() if last else self.accelerator.no_sync(model)

    def backward(self, model, loss: torch.Tensor, last: bool) -> None:
        self.accelerator.backward(loss)

    def step(self, model, optimizer, grad_clip: float | None) -> float | None:
        """Clip and step; the gradient norm before clipping (None without clipping)."""
        norm = float(self.accelerator.clip_grad_norm_(model.parameters(), grad_clip)) if grad_clip else None
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm

    def skip(self, model, optimizer, why: str) -> None:
        """Drop the step's gradients (every rank holds the same, non-finite, reduced ones)."""
        optimizer.zero_grad(set_to_none=True)

    def trainable_state(self, model) -> dict[str, torch.Tensor]:
        """Trainable weights and fixed feature statistics on CPU (every rank calls it)."""
        module = self.accelerator.unwrap_model(model)
        return {k: v.detach().cpu() for k, v in module.trainable_state_dict().items()}

    def load_trainable(self, model, state: dict[str, torch.Tensor], source: str) -> None:
        """Strictly, into the model (its keys must equal ``trainable_state``'s)."""
        self.accelerator.unwrap_model(model).load_trainable_state_dict(state, source=source)

    def save_optimizer(self, model, optimizer, tmp: Path):
        """Every rank enters; returns what the main process passes to ``checkpoint.write_files``."""
        return optimizer

    def load_optimizer(self, model, optimizer, folder: Path) -> None:
        load_optimizer_scheduler(folder, optimizer)


class DeepSpeedParallel(Parallel):
    """DeepSpeed's engine: it reduces at the accumulation boundary, clips inside its step
    (``gradient_clipping``) and writes its own optimizer partitions."""

    deepspeed = True

    @property
    def zero_stage(self) -> int:
        return int(self.accelerator.state.deepspeed_plugin.zero_stage)

    @contextmanager
    def building(self):
        plugin = self.accelerator.state.deepspeed_plugin
        if self.zero_stage != 3 or plugin.zero3_init_flag:
            if self.zero_stage == 3:
                log.warning("zero3_init_flag: the LLM is built partitioned (zero.Init); adapters and LoRA then start "
                            "from other random values than in plain training with the same seed")
            yield
            return
        registered = hf_ds._hf_deepspeed_config_weak_ref
        hf_ds.unset_hf_deepspeed_config()
        try:
            yield
        finally:  # generation under ZeRO-3 reads it (synced_gpus across ranks)
            hf_ds._hf_deepspeed_config_weak_ref = registered

    def accumulating(self, model, last: bool):
        return nullcontext()

    def backward(self, model, loss: torch.Tensor, last: bool) -> None:
        model.set_gradient_accumulation_boundary(last)
        model.backward(loss, scale_wrt_gas=False)  # already normalised by the step's target tokens

    def step(self, model, optimizer, grad_clip: float | None) -> float | None:
        model.step()
        norm = model.get_global_grad_norm()
        return None if norm is None else float(norm)

    def skip(self, model, optimizer, why: str) -> None:
        raise RuntimeError(f"{why}; under DeepSpeed the step's gradients are already reduced into the engine's "
                           f"partitions and cannot be dropped: check these samples or lower the learning rate")

    def trainable_state(self, model) -> dict[str, torch.Tensor]:
        state = super().trainable_state(model)
        if self.zero_stage == 3:
            # The optimizer's fp32 copy, gathered from every rank's partition. Unlike GatheredParameters this
            # leaves the module's parameters alone, so ZeRO-3's recorded fetch order stays valid.
            from deepspeed.utils import safe_get_full_fp32_param  # optional: the [deepspeed] extra

            for name, p in self.accelerator.unwrap_model(model).named_parameters():
                if p.requires_grad:
                    state[name] = safe_get_full_fp32_param(p).detach().to("cpu", p.dtype)
        return state

    def load_trainable(self, model, state: dict[str, torch.Tensor], source: str) -> None:
        """Under ZeRO-3 the engine's checkpoint has restored the partitioned parameters already
        (``load_optimizer`` runs first); they are checked against the file, the buffers copied."""
        if self.zero_stage != 3:
            return super().load_trainable(model, state, source)
        module = self.accelerator.unwrap_model(model)
        expected = set(module.trainable_state_dict())
        if set(state) != expected:
            raise RuntimeError(f"{source}: trainable weights do not match the model: missing="
                               f"{sorted(expected - set(state))[:20]} unexpected={sorted(set(state) - expected)[:20]}")
        restored = self.trainable_state(model)
        params = {n for n, p in module.named_parameters() if p.requires_grad}
        off = [n for n in params if not torch.equal(restored[n], state[n].to(restored[n].dtype))]
        if off:
            raise RuntimeError(f"{source}: DeepSpeed's checkpoint disagrees with {source}/trainable.safetensors "
                               f"on {off[:10]}")
        buffers = dict(module.named_buffers())
        with torch.no_grad():
            for name in expected - params:
                buffers[name].copy_(state[name])

    def save_optimizer(self, model, optimizer, tmp: Path):
        save_deepspeed_state(model, tmp)
        return None

    def load_optimizer(self, model, optimizer, folder: Path) -> None:
        load_deepspeed_state(model, folder)

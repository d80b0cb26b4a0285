"""Shared base of the adversarial editors: named networks and training phases (DESIGN §10).

A method declares its trainable networks by name (:meth:`AdversarialEditor.build_networks`:
``{"G": ..., "D": ...}``, or ``{"AMN", "SAN", "D"}``, or ``{"G_rgb", "D_rgb", "G_seg",
"D_seg"}``) and its phases (:meth:`AdversarialEditor.phases`, :class:`.contract.Phase`: which
networks an optimiser steps, the loss, how many updates per iteration, how often). The base
builds one Adam and one schedule per phase, runs the phases in order, and applies EMA,
channels_last and compile to the named networks a config asks for. Each network is an attribute
of the module under its name (state-dict keys ``G.*``, ``D.*``; EMA copies ``<name>_ema``).

One ``training_step`` = one **iteration**: every phase in declared order, ``repeats`` updates
each, each update on its own chunk of a *super-batch* of ``chunks_per_iter * B`` rows (built by
``faceedit_bench.train``); the default phases are the WGAN-GP family's ``D`` (``n_critic``
updates) then ``G`` (one update, on a fresh chunk, or on the last D chunk when
``g_reuses_last_d_batch``: StarGAN). TF AttGAN/STGAN draw a fresh batch for each of the 6 steps
(implementations.md §12.5). ``self.iteration`` counts iterations (= generator updates): what is
logged, what checkpoints are named by and what ``max_iters`` / ``decay_start`` are in;
Lightning's ``global_step`` counts every optimizer step in manual mode (suites.md §C2).

Losses: WGAN-GP helpers; the penalty's interpolates get ``autograd.grad(create_graph=True)`` on
the *uncompiled* network (compile has no double backward, suites.md §C5), gradient norm in
float32. DDP: strategy ``ddp_find_unused_parameters_true`` (suites.md §C3). Randomness of a
step (target shuffle, GP alphas) comes from a generator seeded by (seed, iteration, rank), so a
resumed run repeats the uninterrupted one without saving RNG states.

Schedules (per iteration, every phase): ``step`` (AttGAN/STGAN: lr/10 from ``decay_start``),
``linear`` (StarGAN: to 0 from ``decay_start`` to ``max_iters``), ``exponential`` (SeCGAN's
AttGAN: geometric from 1 to ``final_lr_factor`` between ``decay_start`` and ``max_iters``) or
``constant``;
``decay_start`` < 1 is a fraction of ``max_iters``.

Speed mechanics, none of which changes the maths (benchmarks/train_speed.py): fakes of a D
update under ``no_grad``; real and fake in one batched D forward when D is per-sample
(:func:`batch_independent`); the penalty through ``D.forward_adv``; each backward asks only for
its optimiser's parameters, the other networks frozen via ``toggle_optimizer``; fused Adam on
CPU/CUDA; CPU training keeps freed memory in the process (:func:`tune_cpu_allocator`, opt out
``FACEEDIT_MALLOC_TUNE=0``).
"""
from __future__ import annotations

import copy
from typing import Any, ClassVar, Sequence

import torch

from ..protocol import DEFAULT_ATTRS
from .base import EditMethod
from .contract import EditResult, Phase


class AdversarialEditor(EditMethod):
    """Named networks + phases; subclasses implement :meth:`build_networks`, the losses
    (:meth:`d_loss` / :meth:`g_loss` for the default phases, or their own :meth:`phases`) and
    :meth:`test_code` / :meth:`generate` for :meth:`edit`."""

    #: attribute encoding of :mod:`.targets` ("attgan", "stgan", "stargan").
    encoding: ClassVar[str] = "attgan"
    #: StarGAN: the G update uses the batch of the last D update (official solver.py).
    g_reuses_last_d_batch: ClassVar[bool] = False
    #: networks given an EMA copy when ``ema_decay`` is set and ``ema_nets`` is not
    ema_default: ClassVar[tuple[str, ...]] = ("G",)

    def __init__(
        self,
        attrs: Sequence[str] = DEFAULT_ATTRS,
        res: int = 128,
        nets: dict | None = None,
        lr: float = 2e-4,
        lr_d: float | None = None,
        betas: Sequence[float] = (0.5, 0.999),
        n_critic: int = 5,
        lambda_gp: float = 10.0,
        schedule: str = "step",
        decay_start: float = 0.5,
        max_iters: int = 1000,
        final_lr_factor: float = 0.01,
        ema_decay: float | None = None,
        ema_nets: Sequence[str] | None = None,
        channels_last: bool | Sequence[str] = False,
        compile: bool | str | dict = False,
        test_intensity: float | None = None,
        seed: int = 0,
        helpers: dict[str, str] | None = None,
        **loss_weights: float,
    ) -> None:
        super().__init__(attrs, res, helpers)
        if schedule not in LRSchedule.KINDS:
            raise ValueError(f"schedule must be one of {LRSchedule.KINDS}, got {schedule!r}")
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.lr_g, self.lr_d = float(lr), float(lr if lr_d is None else lr_d)
        self.betas = tuple(float(b) for b in betas)
        self.n_critic = int(n_critic)
        self.lambda_gp = float(lambda_gp)
        self.schedule, self.decay_start, self.max_iters = schedule, float(decay_start), int(max_iters)
        self.final_lr_factor = float(final_lr_factor)
        if test_intensity is not None:
            self.test_intensity = float(test_intensity)
        self.seed = int(seed)
        self.loss_weights = {**self.default_loss_weights(), **{k: float(v) for k, v in loss_weights.items()}}
        unknown = set(self.loss_weights) - set(self.default_loss_weights())
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown loss weights {sorted(unknown)}; "
                            f"expected {sorted(self.default_loss_weights())}")
        nets = {k: dict(v or {}) for k, v in (nets or {}).items()}
        built = self.build_networks(nets)
        extra = set(nets) - set(built)
        if extra:
            raise ValueError(f"{type(self).__name__}: config names networks {sorted(extra)} that the "
                             f"method does not build; its networks: {sorted(built)}")
        self.network_names = tuple(built)
        for name, net in built.items():
            setattr(self, name, net)
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        self.ema_names: tuple[str, ...] = ()
        if self.ema_decay is not None:
            self.ema_names = tuple(ema_nets if ema_nets is not None else
                                   [n for n in self.ema_default if n in built])
            self._check_names(self.ema_names, "ema_nets")
            for name in self.ema_names:
                setattr(self, f"{name}_ema", copy.deepcopy(built[name]).requires_grad_(False))
        self.channels_last_names = self._select(channels_last, "channels_last")
        for name in self.channels_last_names:
            getattr(self, name).to(memory_format=torch.channels_last)
            if name in self.ema_names:
                getattr(self, f"{name}_ema").to(memory_format=torch.channels_last)
        self._compiled: dict[str, Any] = {}
        for name, backend in self._compile_plan(compile).items():
            kw = {"backend": backend} if isinstance(backend, str) else {}
            self._compiled[name] = torch.compile(built[name], **kw)
        self.iteration = 0
        self._phases = list(self.phases())
        for ph in self._phases:
            self._check_names(ph.updates, f"phase {ph.name!r} updates")
        #: one batched D forward for real + fake (exact only for a per-sample D, see d_real_fake)
        self.d_batched = "D" in built and batch_independent(built["D"])
        #: True during the last update of a phase whose chunk the next phase reuses
        self.feeds_next_phase = False

    # ----------------------------------------------------------------- subclass interface
    def default_loss_weights(self) -> dict[str, float]:
        """Loss weights (λ) of the paper/official code; overridable by keyword."""
        return {}

    def build_networks(self, nets: dict[str, dict]) -> dict[str, torch.nn.Module]:
        """``{name: module}`` of the trainable networks; ``nets[name]`` their config kwargs."""
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        """Default: the WGAN-GP family, ``D`` ``n_critic`` times then ``G`` once."""
        return [Phase("D", ("D",), "d_loss", repeats=self.n_critic, lr=self.lr_d),
                Phase("G", ("G",), "g_loss", reuse_batch=self.g_reuses_last_d_batch, lr=self.lr_g)]

    def d_loss(self, batch: dict, rng: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def g_loss(self, batch: dict, rng: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def test_code(self, src: torch.Tensor, tgt: torch.Tensor, intensity: float) -> torch.Tensor:
        """The conditioning G receives at test time for ``src -> tgt`` (:mod:`.targets`)."""
        raise NotImplementedError

    def generate(self, images: torch.Tensor, code: torch.Tensor, net: torch.nn.Module | None = None) -> torch.Tensor:
        """``net(images, code)`` (default: the possibly compiled G)."""
        return (net if net is not None else self.gen_net)(images, code)

    # ----------------------------------------------------------------- named networks
    @property
    def networks(self) -> dict[str, torch.nn.Module]:
        """The trainable networks by name (uncompiled)."""
        return {n: getattr(self, n) for n in self.network_names}

    def net(self, name: str) -> torch.nn.Module:
        """Network ``name`` for a forward: its compiled wrapper when compiled."""
        compiled = self._compiled.get(name)
        return compiled if compiled is not None else getattr(self, name)

    def inference(self, name: str = "G") -> torch.nn.Module:
        """The EMA copy of network ``name`` when kept, else the network itself."""
        return getattr(self, f"{name}_ema") if name in self.ema_names else getattr(self, name)

    @property
    def gen_net(self) -> torch.nn.Module:
        return self.net("G")

    @property
    def dis_net(self) -> torch.nn.Module:
        return self.net("D")

    @property
    def inference_net(self) -> torch.nn.Module:
        return self.inference("G")

    @property
    def G_ema(self) -> torch.nn.Module | None:  # noqa: N802  (the state-dict name)
        return self._modules.get("G_ema")

    def _check_names(self, names: Sequence[str], what: str) -> None:
        bad = [n for n in names if n not in self.network_names]
        if bad:
            raise ValueError(f"{type(self).__name__}: {what} names unknown networks {bad}; "
                             f"networks: {list(self.network_names)}")

    def _select(self, value: bool | Sequence[str], what: str) -> tuple[str, ...]:
        if isinstance(value, bool) or value is None:
            return self.network_names if value else ()
        names = tuple(value)
        self._check_names(names, what)
        return names

    def _compile_plan(self, value: bool | str | dict) -> dict[str, bool | str]:
        """``True``/a backend name: every network; a dict: ``{name: True | backend}``."""
        if isinstance(value, dict):
            self._check_names(list(value), "compile")
            return {k: v for k, v in value.items() if v}
        if not value:
            return {}
        return {n: value for n in self.network_names}

    # ----------------------------------------------------------------- helpers for losses
    def prep(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last_names else images

    def step_rng(self) -> torch.Generator:
        """CPU generator seeded by (seed, iteration, rank): resumable randomness of a step."""
        rank = self.trainer.global_rank if self._trainer is not None else 0
        return torch.Generator().manual_seed((self.seed * 1_000_003 + self.iteration) * 1009 + rank)

    def rand(self, *shape: int, rng: torch.Generator, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(*shape, generator=rng).to(device=like.device, dtype=like.dtype)

    def d_real_fake(self, real: torch.Tensor, fake: torch.Tensor, name: str = "D") -> tuple[Any, Any]:
        """``(D(real), D(fake))``: one forward of ``cat([real, fake])`` when D is per-sample
        (:func:`batch_independent`; equal up to summation order), else two forwards."""
        net = self.net(name)
        if not (self.d_batched if name == "D" else batch_independent(getattr(self, name))):
            return net(real), net(fake)
        b = real.size(0)
        out = net(torch.cat([real, fake]))
        if torch.is_tensor(out):
            return out[:b], out[b:]
        return tuple(o[:b] for o in out), tuple(o[b:] for o in out)

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator,
                         name: str = "D") -> torch.Tensor:
        """WGAN-GP ``E[(||∇_x̂ D(x̂)||₂ - 1)²]``, ``x̂ = real + α (fake - real)``, α ~ U(0,1) per
        sample; gradient of the summed adversarial output (``grad_outputs=1``, StarGAN) wrt the
        interpolates, ``create_graph=True``, on the uncompiled network ``name``."""
        alpha = self.rand(real.size(0), *([1] * (real.ndim - 1)), rng=rng, like=real)
        x = (real + alpha * (fake.detach() - real)).requires_grad_(True)
        d = getattr(self, name)
        fwd_adv = getattr(d, "forward_adv", None)  # adversarial output only, when offered
        adv = fwd_adv(x) if fwd_adv is not None else d(x)[0]
        total = sum(a.float().sum() for a in adv) if isinstance(adv, (list, tuple)) else adv.float().sum()
        (grad,) = torch.autograd.grad(total, x, create_graph=True)
        norm = grad.float().flatten(1).norm(2, dim=1)
        return ((norm - 1.0) ** 2).mean()

    # ----------------------------------------------------------------- training loop
    @property
    def chunks_per_iter(self) -> int:
        """How many batches one iteration consumes (the super-batch is this many times B)."""
        return sum(ph.fresh_chunks for ph in self._phases)

    def split_batch(self, batch: dict) -> list[dict]:
        k = self.chunks_per_iter
        n = batch["image"].shape[0]
        if n % k:
            raise ValueError(
                f"{self.method_name}: a training batch must hold chunks_per_iter={k} batches "
                f"(phases {[(p.name, p.repeats) for p in self._phases]}) of equal size, got {n} "
                "rows; train through faceedit_bench.train.fit, which builds such loaders")
        b = n // k
        return [{key: v[i * b:(i + 1) * b] if torch.is_tensor(v) else v for key, v in batch.items()}
                for i in range(k)]

    def _update(self, opt, loss_fn, batch: dict, rng: torch.Generator) -> dict:
        """One optimiser step on ``loss_fn(batch, rng)`` with only ``opt``'s parameters trainable
        (``toggle_optimizer`` freezes the other networks' parameters for the forward; the
        backward asks only for ``opt``'s parameters)."""
        self.toggle_optimizer(opt)
        try:
            loss, logs = loss_fn(batch, rng)
            opt.zero_grad(set_to_none=True)
            params = [p for g in opt.param_groups for p in g["params"] if p.requires_grad]
            self.manual_backward(loss, inputs=params)
            opt.step()
        finally:
            self.untoggle_optimizer(opt)
        return logs

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        chunks = self.split_batch(batch)
        rng = self.step_rng()
        logs: dict[str, torch.Tensor] = {}
        runs = [self.iteration % ph.every == 0 for ph in self._phases]
        pos = 0  # next fresh chunk
        for i, (ph, opt) in enumerate(zip(self._phases, opts)):
            nxt = self._phases[i + 1] if i + 1 < len(self._phases) else None
            for r in range(ph.repeats):
                if r == 0 and ph.reuse_batch:
                    chunk = chunks[max(pos - 1, 0)]
                else:
                    chunk, pos = chunks[pos], pos + 1
                if not runs[i]:
                    continue
                self.feeds_next_phase = (r == ph.repeats - 1 and nxt is not None and nxt.reuse_batch
                                         and runs[i + 1])
                loss = getattr(self, ph.loss) if isinstance(ph.loss, str) else ph.loss
                try:
                    logs.update(self._update(opt, loss, chunk, rng))
                finally:
                    self.feeds_next_phase = False
        self.iteration += 1
        for sch in self.lr_schedulers() or []:
            sch.step()
        self.update_ema()
        logs = {f"train/{k}": v.detach().float() for k, v in logs.items()}
        for ph, opt in zip(self._phases, opts):
            logs[f"train/lr_{ph.name}"] = torch.tensor(opt.param_groups[0]["lr"])
        self.log_dict(logs, on_step=True, prog_bar=False, sync_dist=False)
        self.log("iteration", float(self.iteration), on_step=True, prog_bar=True)

    @torch.no_grad()
    def update_ema(self) -> None:
        for name in self.ema_names:
            net, ema = getattr(self, name), getattr(self, f"{name}_ema")
            for p_ema, p in zip(ema.parameters(), net.parameters()):
                p_ema.lerp_(p.detach(), 1.0 - self.ema_decay)
            for b_ema, b in zip(ema.buffers(), net.buffers()):
                b_ema.copy_(b)

    def make_adam(self, params, lr: float, betas: Sequence[float] | None = None) -> torch.optim.Adam:
        """Adam(lr, betas), ``fused=True`` when every parameter is a float tensor on CPU or CUDA
        (the same update as the per-tensor loop, ~5x less optimiser time on CPU); else default."""
        params = list(params)
        fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
                                     for p in params)
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas or self.betas),
                                **({"fused": True} if fused else {}))

    def phase_parameters(self, phase: Phase) -> list[torch.nn.Parameter]:
        seen: dict[int, torch.nn.Parameter] = {}
        for name in phase.updates:
            for p in getattr(self, name).parameters():
                seen.setdefault(id(p), p)
        return list(seen.values())

    def configure_optimizers(self):
        opts = [self.make_adam(self.phase_parameters(ph), ph.lr if ph.lr is not None else self.lr_g,
                               ph.betas) for ph in self._phases]
        sched = LRSchedule(self.schedule, self.decay_start, self.max_iters, self.final_lr_factor)
        return opts, [torch.optim.lr_scheduler.LambdaLR(o, sched) for o in opts]

    def phase_optimizer(self, name: str):
        """The optimiser of phase ``name`` (after the Trainer has built them)."""
        names = [ph.name for ph in self._phases]
        opts = self.optimizers()
        return (opts if isinstance(opts, list) else [opts])[names.index(name)]

    def on_fit_start(self) -> None:
        if self.device.type == "cpu":
            tune_cpu_allocator()

    def on_train_start(self) -> None:
        """Re-apply the configured schedule after a restore (LambdaLR's saved fields would keep
        the old ``max_iters`` when a run is extended) and set the lr of the current iteration."""
        sched = LRSchedule(self.schedule, self.decay_start, self.max_iters, self.final_lr_factor)
        scheds = self.lr_schedulers()
        for s in scheds if isinstance(scheds, list) else [scheds]:
            s.lr_lambdas = [sched] * len(s.optimizer.param_groups)
            for group, base in zip(s.optimizer.param_groups, s.base_lrs):
                group["lr"] = base * sched(s.last_epoch)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["faceedit_iteration"] = int(self.iteration)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.iteration = int(checkpoint.get("faceedit_iteration", 0))

    # ----------------------------------------------------------------- inference
    @torch.no_grad()
    def edit(self, images, src_attrs, tgt_attrs, parts=None, intensity=None, *, attr_index=None):
        """Edit ``images`` from ``src_attrs`` to ``tgt_attrs`` with the EMA G if kept, else G.

        ``intensity`` None means :attr:`test_intensity` (the paper's unless configured)."""
        self.check_edit_inputs(images, src_attrs, tgt_attrs)
        k = self.test_intensity if intensity is None else float(intensity)
        code = self.test_code(src_attrs.float(), tgt_attrs.float(), k).to(images.dtype)
        return EditResult(self.generate(self.prep(images), code, self.inference_net).clamp(-1, 1))

    def method_protocol(self) -> dict[str, Any]:
        from .targets import encoding_protocol

        out = super().method_protocol()
        out.update(encoding_protocol(self.encoding, getattr(self, "thres_int", 0.5), self.test_intensity,
                                       getattr(self, "target_sampling", "shuffle")))
        out.update({"n_critic": self.n_critic, "ema": bool(self.ema_names), "iteration": self.iteration,
                    "phases": [{"name": p.name, "updates": list(p.updates), "repeats": p.repeats,
                                "every": p.every} for p in self._phases]})
        return out


def tune_cpu_allocator() -> bool:
    """Keep large freed blocks in the process heap (:mod:`faceedit_bench.alloc`; opt out with
    ``FACEEDIT_MALLOC_TUNE=0``). Returns whether it applied."""
    from ..alloc import keep_freed_memory

    return keep_freed_memory()


def batch_independent(net: torch.nn.Module) -> bool:
    """Whether ``net`` (in training mode) treats the samples of a batch independently and keeps
    no batch statistics, so one forward of ``cat([a, b])`` equals forwards of ``a`` and ``b``.

    False with any BatchNorm, any instance norm with running statistics or dropout; instance /
    layer / group norm without running statistics is per sample.
    """
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.dropout import _DropoutNd
    from torch.nn.modules.instancenorm import _InstanceNorm

    for m in net.modules():
        if isinstance(m, (_BatchNorm, _DropoutNd)):
            return False
        if isinstance(m, _InstanceNorm) and m.track_running_stats:
            return False
    return True


class LRSchedule:
    """Learning-rate factor per iteration; a class (not a closure) so LambdaLR saves its fields."""

    KINDS = ("step", "linear", "exponential", "constant")

    def __init__(self, kind: str, decay_start: float, max_iters: int, final_factor: float = 0.01) -> None:
        self.kind = kind
        self.max_iters = int(max_iters)
        self.start = int(decay_start * max_iters) if decay_start < 1 else int(decay_start)
        self.final_factor = float(final_factor)

    def __call__(self, it: int) -> float:
        if self.kind == "constant" or it < self.start:
            return 1.0
        if self.kind == "step":
            return 0.1
        frac = min((it - self.start) / max(self.max_iters - self.start, 1), 1.0)
        if self.kind == "exponential":
            return self.final_factor ** frac
        return max(0.0, 1.0 - frac)

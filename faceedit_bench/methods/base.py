"""The interface every method answers (DESIGN §3).

``EditMethod`` is the root LightningModule: it fixes the attribute list and resolution, and the
single call the evaluator makes, :meth:`EditMethod.edit`. Adversarial editors derive from the
shared GAN base built on top of it.
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import lightning.pytorch as pl
import torch

from ..protocol import DEFAULT_ATTRS, validate_attrs


class EditMethod(pl.LightningModule):
    """Root of every method: ``edit(images, src_attrs, tgt_attrs, parts) -> images``.

    Images are float B x 3 x H x W in [-1, 1]; attributes float B x A in {0, 1} in the order of
    ``self.attrs``; ``parts`` an optional uint8 B x H x W 19-class label map.
    """

    method_name: ClassVar[str] = "?"
    #: test intensity that reproduces the method's paper (implementations.md §0); recorded.
    paper_test_intensity: ClassVar[float] = 1.0
    #: whether the method is evaluated on the label-conditioned track (False for Gu et al.).
    label_conditioned: ClassVar[bool] = True

    def __init__(self, attrs: Sequence[str] = DEFAULT_ATTRS, res: int = 128) -> None:
        super().__init__()
        self.attrs = validate_attrs(attrs)
        self.res = int(res)

    @property
    def n_attrs(self) -> int:
        return len(self.attrs)

    @torch.no_grad()
    def edit(
        self,
        images: torch.Tensor,
        src_attrs: torch.Tensor,
        tgt_attrs: torch.Tensor,
        parts: torch.Tensor | None = None,
        intensity: float | None = None,
    ) -> torch.Tensor:
        """Return ``images`` edited from ``src_attrs`` to ``tgt_attrs`` (no grad, in [-1, 1]).

        ``intensity`` scales the edited attributes' code (None: :attr:`paper_test_intensity`).
        """
        raise NotImplementedError

    def method_protocol(self) -> dict[str, Any]:
        """Method-specific protocol fields recorded with every result (encodings, variants)."""
        return {"method": self.method_name, "paper_test_intensity": self.paper_test_intensity}


class AdversarialEditor(EditMethod):
    """Shared base of the adversarial editors (AttGAN, STGAN, StarGAN, ...): manual optimisation.

    One ``training_step`` = one **iteration** = ``n_critic`` discriminator updates, each on its
    own batch, then one generator update (implementations.md §12.5; TF AttGAN/STGAN draw a fresh
    batch for each of the 6 steps). The training loader therefore yields *super-batches* of
    ``chunks_per_iter * B`` rows (built by ``faceedit_bench.train``), split here into
    ``n_critic`` D batches plus one G batch; with ``g_reuses_last_d_batch`` (StarGAN, whose G step
    reuses the batch of the D step it follows) there are only ``n_critic`` chunks.

    ``self.iteration`` counts generator updates: it is what is logged (``iteration``), what
    checkpoints are named by and what ``max_iters`` / ``decay_start`` are in. Lightning's
    ``global_step`` counts every optimizer step in manual mode (suites.md §C2) and is not used.

    Losses: WGAN-GP; the penalty's interpolates get ``autograd.grad(create_graph=True)`` wrt the
    inputs, computed on the *uncompiled* D (compile has no double backward, suites.md §C5) and
    the gradient norm in float32 (bf16-mixed). Subclasses implement :meth:`build_nets`,
    :meth:`d_loss`, :meth:`g_loss` and :meth:`test_code`/:meth:`generate`.

    DDP: train with strategy ``ddp_find_unused_parameters_true`` (the G step leaves D's
    parameters unused and vice versa; the default strategy and ``static_graph`` both fail with the
    penalty, suites.md §C3). Randomness of a step (target shuffle, GP alphas) comes from a
    generator seeded by (seed, iteration, rank), so a resumed run repeats the uninterrupted one
    without saving RNG states.

    Learning-rate schedules (per iteration, both optimisers): ``step`` (AttGAN/STGAN: lr/10 from
    ``decay_start``, the TF code's ``10**-(epoch//100)`` over 200 epochs), ``linear`` (StarGAN
    paper: linear to 0 from ``decay_start`` to ``max_iters``) or ``constant``. ``decay_start``
    < 1 is a fraction of ``max_iters``.

    Options: ``ema_decay`` keeps ``G_ema`` (saved in the state dict, used by :meth:`edit`);
    ``channels_last``; ``compile`` (True or a backend name) wraps G and D with ``torch.compile``
    for the adversarial forwards. bf16-mixed is the Trainer's ``precision``.

    Speed mechanics, none of which changes the maths (benchmarks/train_speed.py times them
    against the official code): the fake of a D update is made under ``no_grad`` (the official
    codes record a graph and detach it); real and fake go through D in **one batched forward**
    (:meth:`d_real_fake`) when D is per-sample (:func:`batch_independent`: no BatchNorm, no
    running statistics, no dropout; the AttGAN/STGAN D uses instance or layer norm, the StarGAN D
    none) and in two forwards otherwise; the penalty forwards through the adversarial head only
    (``D.forward_adv``); each backward asks only for its optimiser's parameters (``inputs=``: no
    gradient for the penalty's interpolates, none for the frozen player, whose parameters have
    ``requires_grad=False`` during the other's update via ``toggle_optimizer``); Adam is
    ``fused=True`` on CPU/CUDA (same update rule, one kernel instead of per-tensor loops). CPU
    training also keeps freed memory in the process (:func:`tune_cpu_allocator`, glibc; opt out
    with ``FACEEDIT_MALLOC_TUNE=0``): otherwise glibc hands every large activation buffer back to
    the OS and page-faults it in again, ~25 % of an AttGAN iteration's CPU time at 64 px.
    """

    #: attribute encoding of :mod:`.targets` ("attgan", "stgan", "stargan").
    encoding: ClassVar[str] = "attgan"
    #: StarGAN: the G update uses the batch of the last D update (official solver.py).
    g_reuses_last_d_batch: ClassVar[bool] = False

    def __init__(
        self,
        attrs: Sequence[str] = DEFAULT_ATTRS,
        res: int = 128,
        generator: dict | None = None,
        discriminator: dict | None = None,
        lr: float = 2e-4,
        lr_d: float | None = None,
        betas: Sequence[float] = (0.5, 0.999),
        n_critic: int = 5,
        lambda_gp: float = 10.0,
        schedule: str = "step",
        decay_start: float = 0.5,
        max_iters: int = 1000,
        ema_decay: float | None = None,
        channels_last: bool = False,
        compile: bool | str = False,
        test_intensity: float | None = None,
        seed: int = 0,
        **loss_weights: float,
    ) -> None:
        super().__init__(attrs, res)
        if schedule not in ("step", "linear", "constant"):
            raise ValueError(f"schedule must be 'step', 'linear' or 'constant', got {schedule!r}")
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.lr_g, self.lr_d = float(lr), float(lr if lr_d is None else lr_d)
        self.betas = tuple(float(b) for b in betas)
        self.n_critic = int(n_critic)
        self.lambda_gp = float(lambda_gp)
        self.schedule, self.decay_start, self.max_iters = schedule, float(decay_start), int(max_iters)
        self.test_intensity = float(self.paper_test_intensity if test_intensity is None else test_intensity)
        self.seed = int(seed)
        self.loss_weights = {**self.default_loss_weights(), **{k: float(v) for k, v in loss_weights.items()}}
        unknown = set(self.loss_weights) - set(self.default_loss_weights())
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown loss weights {sorted(unknown)}; "
                            f"expected {sorted(self.default_loss_weights())}")
        self.G, self.D = self.build_nets(dict(generator or {}), dict(discriminator or {}))
        self.G_ema: torch.nn.Module | None = None
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        if self.ema_decay is not None:
            import copy

            self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        self.use_channels_last = bool(channels_last)
        if self.use_channels_last:
            self.to(memory_format=torch.channels_last)
        self._compiled: dict[str, Any] = {}
        if compile:  # True: the default backend (inductor); a string names the backend
            kw = {"backend": compile} if isinstance(compile, str) else {}
            self._compiled = {"G": torch.compile(self.G, **kw), "D": torch.compile(self.D, **kw)}
        self.iteration = 0
        #: one batched D forward for real + fake (exact only for a per-sample D, see d_real_fake)
        self.d_batched = batch_independent(self.D)
        #: True during the last D update of an iteration whose G update reuses its batch
        self._d_step_feeds_g = False

    # ----------------------------------------------------------------- subclass interface
    def default_loss_weights(self) -> dict[str, float]:
        """Loss weights (λ) of the paper/official code; overridable by keyword."""
        return {}

    def build_nets(self, generator: dict, discriminator: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
        raise NotImplementedError

    def d_loss(self, batch: dict, rng: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Discriminator loss on one batch (D's parameters get the gradient)."""
        raise NotImplementedError

    def g_loss(self, batch: dict, rng: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Generator loss on one batch (G's parameters get the gradient)."""
        raise NotImplementedError

    def test_code(self, src: torch.Tensor, tgt: torch.Tensor, intensity: float) -> torch.Tensor:
        """The conditioning G receives at test time for ``src -> tgt`` (:mod:`.targets`)."""
        raise NotImplementedError

    def generate(self, images: torch.Tensor, code: torch.Tensor, net: torch.nn.Module | None = None) -> torch.Tensor:
        """``net(images, code)`` (default: the possibly compiled G)."""
        return (net if net is not None else self.gen_net)(images, code)

    # ----------------------------------------------------------------- helpers
    @property
    def gen_net(self) -> torch.nn.Module:
        return self._compiled.get("G", self.G)

    @property
    def dis_net(self) -> torch.nn.Module:
        return self._compiled.get("D", self.D)

    def prep(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.use_channels_last else images

    def step_rng(self) -> torch.Generator:
        """CPU generator seeded by (seed, iteration, rank): resumable randomness of a step."""
        rank = self.trainer.global_rank if self._trainer is not None else 0
        return torch.Generator().manual_seed((self.seed * 1_000_003 + self.iteration) * 1009 + rank)

    def rand(self, *shape: int, rng: torch.Generator, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(*shape, generator=rng).to(device=like.device, dtype=like.dtype)

    def d_real_fake(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[Any, Any]:
        """``(D(real), D(fake))``, each D's output (a tensor or a tuple of tensors).

        With :attr:`d_batched` (D per-sample, :func:`batch_independent`) one forward of
        ``cat([real, fake])`` split in two: the same numbers as two forwards up to floating-point
        summation order, at one launch per layer; otherwise two forwards.
        """
        if not self.d_batched:
            return self.dis_net(real), self.dis_net(fake)
        b = real.size(0)
        out = self.dis_net(torch.cat([real, fake]))
        if torch.is_tensor(out):
            return out[:b], out[b:]
        return tuple(o[:b] for o in out), tuple(o[b:] for o in out)

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """WGAN-GP ``E[(||∇_x̂ D(x̂)||₂ - 1)²]``, ``x̂ = real + α (fake - real)``, α ~ U(0,1) per sample.

        Gradient of the adversarial output (summed over a patch map, i.e. ``grad_outputs=1``
        as StarGAN) wrt the interpolates, ``create_graph=True``; on the uncompiled ``self.D``.
        """
        alpha = self.rand(real.size(0), 1, 1, 1, rng=rng, like=real)
        x = (real + alpha * (fake.detach() - real)).requires_grad_(True)
        fwd_adv = getattr(self.D, "forward_adv", None)  # adversarial output only, when offered
        adv = fwd_adv(x) if fwd_adv is not None else self.D(x)[0]
        (grad,) = torch.autograd.grad(adv.float().sum(), x, create_graph=True)
        norm = grad.float().flatten(1).norm(2, dim=1)
        return ((norm - 1.0) ** 2).mean()

    # ----------------------------------------------------------------- training loop
    @property
    def chunks_per_iter(self) -> int:
        """How many batches one iteration consumes (the super-batch is this many times B)."""
        return self.n_critic + (0 if self.g_reuses_last_d_batch else 1)

    def split_batch(self, batch: dict) -> list[dict]:
        k = self.chunks_per_iter
        n = batch["image"].shape[0]
        if n % k:
            raise ValueError(
                f"{self.method_name}: a training batch must hold chunks_per_iter={k} batches "
                f"(n_critic={self.n_critic}) of equal size, got {n} rows; train through "
                "faceedit_bench.train.fit, which builds such loaders"
            )
        b = n // k
        return [{key: v[i * b:(i + 1) * b] if torch.is_tensor(v) else v for key, v in batch.items()}
                for i in range(k)]

    def _update(self, opt, loss_fn, batch: dict, rng: torch.Generator) -> dict:
        """One optimiser step on ``loss_fn(batch, rng)`` with only ``opt``'s parameters trainable.

        ``toggle_optimizer`` sets ``requires_grad=False`` on the other player's parameters for the
        forward (no weight gradients for the frozen player, as AttGAN-PyTorch ``trainG``); the
        backward asks only for ``opt``'s parameters (no ``.grad`` for the penalty's interpolates).
        """
        self.toggle_optimizer(opt)
        loss, logs = loss_fn(batch, rng)
        opt.zero_grad(set_to_none=True)
        params = [p for g in opt.param_groups for p in g["params"] if p.requires_grad]
        self.manual_backward(loss, inputs=params)
        opt.step()
        self.untoggle_optimizer(opt)
        return logs

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        chunks = self.split_batch(batch)
        rng = self.step_rng()
        logs: dict[str, torch.Tensor] = {}
        for i in range(self.n_critic):
            self._d_step_feeds_g = self.g_reuses_last_d_batch and i == self.n_critic - 1
            try:
                logs.update(self._update(opt_d, self.d_loss, chunks[i], rng))
            finally:
                self._d_step_feeds_g = False
        logs.update(self._update(opt_g, self.g_loss, chunks[-1], rng))
        self.iteration += 1
        for sch in self.lr_schedulers():
            sch.step()
        self.update_ema()
        logs = {f"train/{k}": v.detach().float() for k, v in logs.items()}
        logs["train/lr_g"] = torch.tensor(opt_g.param_groups[0]["lr"])
        self.log_dict(logs, on_step=True, prog_bar=False, sync_dist=False)
        self.log("iteration", float(self.iteration), on_step=True, prog_bar=True)

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.G_ema is None:
            return
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - self.ema_decay)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    def make_adam(self, params, lr: float) -> torch.optim.Adam:
        """Adam(lr, betas), ``fused=True`` when every parameter is a float tensor on CPU or CUDA
        (the same update as the per-tensor loop, ~5x less optimiser time on CPU); else default."""
        params = list(params)
        fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
                                     for p in params)
        return torch.optim.Adam(params, lr=lr, betas=self.betas, **({"fused": True} if fused else {}))

    def configure_optimizers(self):
        opt_g = self.make_adam(self.G.parameters(), self.lr_g)
        opt_d = self.make_adam(self.D.parameters(), self.lr_d)
        sched = LRSchedule(self.schedule, self.decay_start, self.max_iters)
        return ([opt_g, opt_d],
                [torch.optim.lr_scheduler.LambdaLR(opt_g, sched),
                 torch.optim.lr_scheduler.LambdaLR(opt_d, sched)])

    def on_fit_start(self) -> None:
        if self.device.type == "cpu":
            tune_cpu_allocator()

    def on_train_start(self) -> None:
        """Re-apply the configured schedule after a restore (LambdaLR's saved fields would keep
        the old ``max_iters`` when a run is extended) and set the lr of the current iteration."""
        sched = LRSchedule(self.schedule, self.decay_start, self.max_iters)
        scheds = self.lr_schedulers()
        for s in scheds if isinstance(scheds, list) else [scheds]:
            s.lr_lambdas = [sched] * len(s.optimizer.param_groups)
            for group, base in zip(s.optimizer.param_groups, s.base_lrs):
                group["lr"] = base * sched(s.last_epoch)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["faceedit_method"] = self.method_name
        checkpoint["faceedit_iteration"] = int(self.iteration)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.iteration = int(checkpoint.get("faceedit_iteration", 0))

    # ----------------------------------------------------------------- inference
    @property
    def inference_net(self) -> torch.nn.Module:
        return self.G_ema if self.G_ema is not None else self.G

    @torch.no_grad()
    def edit(self, images, src_attrs, tgt_attrs, parts=None, intensity=None):
        """Edit ``images`` from ``src_attrs`` to ``tgt_attrs`` with the EMA G if kept, else G.

        ``intensity`` None means the method's paper-parity test intensity (see the subclass).
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be B x 3 x H x W, got {tuple(images.shape)}")
        if src_attrs.shape != (images.shape[0], self.n_attrs) or tgt_attrs.shape != src_attrs.shape:
            raise ValueError(
                f"src_attrs/tgt_attrs must be B x {self.n_attrs} (attrs {list(self.attrs)}), got "
                f"{tuple(src_attrs.shape)} / {tuple(tgt_attrs.shape)}")
        k = self.test_intensity if intensity is None else float(intensity)
        code = self.test_code(src_attrs.float(), tgt_attrs.float(), k).to(images.dtype)
        return self.generate(self.prep(images), code, self.inference_net).clamp(-1, 1)

    @torch.no_grad()
    def sample_grid(self, images: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        """Rows = inputs; columns = input, reconstruction, one single-attribute flip per attribute.

        Returns (B * (2 + A)) x 3 x H x W in [-1, 1], row-major (for ``make_grid(nrow=2+A)``).
        """
        from ..protocol import single_flip_targets

        was_training = self.training
        self.eval()
        try:
            cols = [images, self.edit(images, attrs, attrs)]
            cols += [self.edit(images, attrs, t) for t in single_flip_targets(attrs, self.attrs)]
        finally:
            self.train(was_training)
        return torch.stack(cols, 1).flatten(0, 1)

    def method_protocol(self) -> dict[str, Any]:
        from .targets import encoding_protocol

        out = super().method_protocol()
        out.update(encoding_protocol(self.encoding, getattr(self, "thres_int", 0.5), self.test_intensity))
        out.update({"n_critic": self.n_critic, "ema": self.ema_decay is not None, "iteration": self.iteration})
        return out


def tune_cpu_allocator() -> bool:
    """Keep large freed blocks in the process heap so a training step reuses the previous step's
    activation memory instead of unmapping and page-faulting it again (:mod:`faceedit_bench.alloc`;
    opt out with ``FACEEDIT_MALLOC_TUNE=0``). Returns whether it applied."""
    from ..alloc import keep_freed_memory

    return keep_freed_memory()


def batch_independent(net: torch.nn.Module) -> bool:
    """Whether ``net`` (in training mode) treats the samples of a batch independently and keeps
    no batch statistics, so one forward of ``cat([a, b])`` equals forwards of ``a`` and ``b``.

    False with any BatchNorm (batch statistics couple the samples), any instance norm with
    running statistics (one buffer update over 2B rows instead of two) or dropout (the masks
    would be drawn differently). Instance/layer/group norm without running statistics is per
    sample.
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

    def __init__(self, kind: str, decay_start: float, max_iters: int) -> None:
        self.kind = kind
        self.max_iters = int(max_iters)
        self.start = int(decay_start * max_iters) if decay_start < 1 else int(decay_start)

    def __call__(self, it: int) -> float:
        if self.kind == "constant" or it < self.start:
            return 1.0
        if self.kind == "step":
            return 0.1
        span = max(self.max_iters - self.start, 1)
        return max(0.0, 1.0 - (it - self.start) / span)

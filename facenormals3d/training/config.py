"""What defines a training run (:class:`TrainConfig`); saved in every checkpoint as
``train_config`` (:meth:`TrainConfig.to_dict`), so its fields stay readable by resumed runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from facenormals3d.model.config import ModelConfig

#: What :attr:`TrainConfig.train_only` may name.
TRAIN_ONLY = ("all", "confidence", "detail")
#: How synthetic training crops may be framed (``TrainConfig.framing``).
FRAMINGS = ("model", "front-end")

#: Settings that may change when a run is resumed: how long, how often and on what it runs
#: (workers, CPU precision), not what it learns from.
RUN_LENGTH_FIELDS = ("steps", "max_minutes", "val_every", "checkpoint_every", "log_every", "num_workers",
                     "cpu_bf16")


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """Network shape."""
    steps: int = 20000
    """Optimizer steps in total."""
    batch_size: int = 8
    """Samples per source per step (per process under DDP)."""
    lr: float = 1e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to 5 %)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    warmup_steps: int = 200
    """Steps of linear learning-rate warm-up."""
    w_normal_l1: float = 1.0
    """Image -> normals: masked L1."""
    w_normal_angular: float = 1.0
    """Image -> normals: masked 1 - cos(angle)."""
    w_latent: float = 0.1
    """Latent consistency between E_I(image) and E_N(normals) on paired data."""
    latent_loss: str = "l2"
    """``l2`` (mean squared) or ``l1`` latent consistency."""
    w_image: float = 1.0
    """Image -> image: L1 (masked where a mask is known)."""
    w_recon: float = 0.5
    """Normals -> normals (skips off): weight of its L1 + 1 - cos."""
    w_hair: float = 0.3
    """Weight of a fully hair-covered face pixel in the image -> normals losses (the
    ground truth there is the skin under the hair; items without ``hair`` count fully)."""
    w_confidence: float = 0.1
    """Weight of the von Mises-Fisher NLL that trains the confidence head (models with
    ``ModelConfig.confidence``; the normals are detached in this term)."""
    prior: str = "none"
    """Prior normals fed to a ``coarse_normals`` model: a name in
    :data:`facenormals3d.training.prior.PRIORS`, run on every training image in the data
    workers ("landmarks", "fit": the fitted face with the landmark fit's priors until
    2026-12-06, "fit-v2": with reconstruct's since); "none" = the data brings
    ``coarse_normals`` itself."""
    framing: str = "model"
    """How the synthetic training crops are framed: ``"model"``: the engine's crop rule on the
    face model's own landmarks (with jitter); ``"front-end"``: as ``reconstruct`` crops a
    photo, on the landmarks mediapipe finds (needs ``--synth`` data rendered with
    ``SynthSettings.margin`` > 1 and a prior;
    :class:`facenormals3d.training.prior.FrontEndFramed`)."""
    train_only: str = "all"
    """``"all"``: train the whole network. ``"confidence"``: train the confidence head's
    output channel alone (needs ``ModelConfig.confidence`` and ``init_weights``): every other
    weight and the batch-norm statistics stay frozen, so the normals stay exactly those of
    ``init_weights`` and a step costs one forward pass; the loss is the confidence term
    alone and the best weights are those of the lowest validation confidence NLL.
    ``"detail"``: train the detail head alone (needs ``ModelConfig.detail_channels`` and
    ``init_weights``): the rest of the network and its batch-norm statistics stay frozen;
    the loss is the image -> normals terms at the crop's resolution, a step one forward
    pass of the network and the head's forward and backward."""
    init_weights: str | None = None
    """Start from these ``.safetensors`` weights (e.g. the shipped network): tensors of the
    same name and shape are copied; a first convolution with more input channels (a prior-
    conditioned model) gets their weights for the RGB channels and zeros for the prior's,
    so training starts from the given network's behaviour; weights of a narrower network
    (smaller ``ModelConfig.width``) are widened into this one computing the same
    (:mod:`facenormals3d.model.widen`). Ignored when resuming."""
    init_weights_sha256: str | None = None
    """SHA-256 of ``init_weights``, recorded when a run starts from them (the path alone does
    not say which weights, e.g. ``assets/normalnet.safetensors`` of some commit). A run
    started from a config that records one refuses other weights."""
    data_seed: int = 1
    """Seed of the synthetic data (``--synth``): with the model seed and this config it
    reproduces the run's data exactly."""
    synth: dict | None = None
    """``SynthSettings.to_dict()`` of on-the-fly synthetic data (``--synth``), else None."""
    flip: bool = True
    """Random horizontal flips (normals' x negated)."""
    val_every: int = 500
    """Validate every this many steps (and at the end)."""
    val_samples: int = 64
    """Held-out samples scored per validation (the first ones of the split)."""
    checkpoint_every: int = 100
    """Write the checkpoint every this many steps."""
    log_every: int = 10
    """Append a training-log row every this many steps."""
    max_minutes: float = 0.0
    """Stop (with a checkpoint) after this much wall time; 0 = no limit."""
    seed: int = 0
    """Seed of the model initialisation, data order and augmentation."""
    num_workers: int = 0
    """DataLoader worker processes per source."""
    amp: bool = True
    """Mixed precision (float16 autocast) when training on CUDA; ignored on CPU."""
    cpu_bf16: bool = False
    """bfloat16 autocast when training on the CPU (weights, optimizer state and losses stay
    float32). Worth it on CPUs with bfloat16 instructions (AVX512-BF16, AMX): on this
    project's 2-core machine (AVX512-BF16) ``bench network --bf16`` trained the shipped
    network at 9.0 samples/s against 4.6 in float32 on one thread (2026-12-07); where they
    are missing it is emulated and far slower (an AVX2-only AMD EPYC: 0.2 against 1.7
    samples/s on two threads, 0.12x)."""
    channels_last: bool = False
    """Use the channels-last memory format."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        return cls(model=ModelConfig.from_dict(d.pop("model")), **d)

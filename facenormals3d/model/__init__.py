"""The cross-modal face-normal network (Abrevaya et al., CVPR 2020) and its losses.

Modules: :mod:`.config` (sizes), :mod:`.networks` (encoders/decoders),
:mod:`.crossmodal` (the full model with deactivable skips), :mod:`.losses`,
:mod:`.weights` (safetensors I/O with SHA-256 check), :mod:`.infer` (prediction).
Training and validation live in :mod:`facenormals3d.training`.
"""

"""``facenormals3d build-face-model``: make the shipped face-model asset from an ICT FaceKit folder."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Build the compact face model that `reconstruct` fits (assets/face_model.npz) from an ICT
FaceKit folder (the public repository's layout; MIT licence). Deterministic for a given
folder and --seed. Keeps the head region (face, scalp, ears, neck stub, mouth socket, eye
sockets) and the eyeballs, the first --identity-modes identity modes, all 53 expression
blendshapes with their names, triangles and a one-texture UV atlas, and the mediapipe
478-landmark correspondence, which it makes by rendering --renders synthetic faces, running
the project's own face front end on them and carrying the landmarks back to the surface.
Takes about 10 s. ICT's licence must ship beside the asset (assets/ICT-FaceKit.LICENSE).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from facenormals3d.console import add_common_options
    from facenormals3d.fit.build import N_IDENTITY

    p = sub.add_parser("build-face-model", help="make the face-model asset from an ICT FaceKit folder",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ict-dir", required=True, help="ICT FaceKit folder (the public repository's layout)")
    p.add_argument("-o", "--out", default=None, help="output .npz (default: the shipped assets/face_model.npz)")
    p.add_argument("--identity-modes", type=int, default=N_IDENTITY,
                   help=f"identity modes to keep (default {N_IDENTITY} of ICT's 100)")
    p.add_argument("--renders", type=int, default=96, help="renders for the landmark correspondence (default 96)")
    p.add_argument("--seed", type=int, default=5, help="seed of those renders (default 5)")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facenormals3d.console import emit, progress
    from facenormals3d.errors import ExitCode, InputError
    from facenormals3d.fit.build import build_face_model
    from facenormals3d.fit.model import DEFAULT_FACE_MODEL, save_face_model

    if args.identity_modes < 1 or args.renders < 8:
        raise InputError("--identity-modes/--renders", "need at least 1 mode and 8 renders")
    model = build_face_model(args.ict_dir, args.identity_modes, args.renders, args.seed,
                             progress=lambda it: progress(it, total=args.renders, desc="correspondence",
                                                          args=args, unit="render"))
    out = save_face_model(model, args.out or DEFAULT_FACE_MODEL)
    corr = model.info["correspondence"]
    emit(args, {"out": str(out), "vertices": model.n_vertices, "triangles": int(len(model.triangles)),
                "identity_modes": model.n_identity, **corr},
         f"wrote {out}: {model.n_vertices} vertices, {len(model.triangles)} triangles, "
         f"{model.n_identity} identity modes, {model.n_expression} blendshapes; landmarks from "
         f"{corr['renders_with_face']}/{corr['renders']} renders (median spread {corr['spread_mm_median']:.2f} mm)")
    return int(ExitCode.OK)

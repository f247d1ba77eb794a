"""``facenormals3d synth``: render a synthetic training set from the ICT FaceKit model."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Render N synthetic face crops (256 x 256) with exactly aligned ground truth from the ICT
FaceKit morphable model (random identity, expression, pose, camera, skin, detail,
hair, lighting, photographic or procedural background, shoulders, glasses, occluders
and camera effects), split by identity into
train / val / test (identity id mod 20: 0 -> test, 1 -> val, else train).

Output layout (OUT):
  manifest.json          settings, seed, counts per split, shard list, layout
  contact_sheet.png      64 samples: image | normals | mask (hair in red)
  SPLIT/shard-NNNNN/     up to --shard-size samples each, plain .npy (memory-mappable):
    image.npy        N x S x S x 3 uint8    sRGB photo
    normals.npy      N x S x S x 3 float16  camera-frame unit normals (x right, y up,
                                            z toward the camera), 0 outside the mask
    mask.npy         N x S x S     uint8    1 = face (forehead to chin, eyes; not the
                                            mouth interior)
    hair.npy         N x S x S     uint8    hair coverage x 255 (normals and mask under
                                            hair stay the skin's)
    depth.npy        N x S x S     float16  depth - depth_offset in mm (NaN = background)
    depth_offset.npy N             float32  depth = depth.npy + depth_offset
    albedo.npy       N x S x S x 3 uint8    linear albedo, sRGB-encoded
    shading.npy      N x S x S x 3 float16  linear diffuse shading
    landmarks68.npy  N x 68 x 2    float32  iBUG-68 landmarks in crop pixels
    identity.npy, seed.npy  N      int64
    params.jsonl     one JSON object per sample (all drawn parameters)

Read it with facenormals3d.data.datasets.ShardDataset(OUT, split="train").
Sample i depends only on (--seed, i): any worker count gives the same dataset.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from facenormals3d.console import add_common_options

    p = sub.add_parser("synth", help="render a synthetic training set (ICT FaceKit)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ict-dir", required=True, help="ICT FaceKit folder (the public repository's layout)")
    p.add_argument("-n", type=int, required=True, help="number of samples")
    p.add_argument("-o", "--out", required=True, help="output folder (written atomically)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--shard-size", type=int, default=256, help="samples per shard (default 256)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facenormals3d.console import emit, progress
    from facenormals3d.data.generate import generate
    from facenormals3d.data.ict import load_ict
    from facenormals3d.errors import ExitCode, InputError
    from facenormals3d.outputs import staged_dir

    if args.n < 1:
        raise InputError("-n", f"must be at least 1, got {args.n}")
    if args.workers < 1 or args.shard_size < 1:
        raise InputError("--workers/--shard-size", "must be at least 1")
    load_ict(args.ict_dir)  # fail on a bad folder before creating anything

    def bar(stream, total):
        return progress(stream, total=total, desc="synth", args=args, unit="sample")

    with staged_dir(args.out, overwrite=args.overwrite) as stage:
        result = generate(args.ict_dir, args.n, stage, seed=args.seed, workers=args.workers,
                          shard_size=args.shard_size, progress=bar)
    rate = args.n / max(result.seconds, 1e-9)
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    emit(args, {"out": str(args.out), "counts": result.counts, "seconds": result.seconds,
                "samples_per_second": rate},
         f"wrote {args.n} samples to {args.out} ({counts}) in {result.seconds:.1f} s "
         f"({rate:.1f} samples/s)\ncontact sheet: {args.out}/contact_sheet.png")
    return int(ExitCode.OK)

"""``facenormals3d bench NAME``: speed/accuracy benchmarks that print a table and write JSON."""

from __future__ import annotations

import argparse
import importlib
import importlib.util

from facenormals3d.errors import ExitCode

#: Benchmark name -> module implementing it (see :mod:`facenormals3d.bench`).
BENCHES = {
    "integration": "facenormals3d.bench.integration",
    "synth": "facenormals3d.bench.synth",
    "network": "facenormals3d.bench.network",
    "pipeline": "facenormals3d.bench.pipeline",
    "evaluate": "facenormals3d.bench.evaluate",
    "faces": "facenormals3d.bench.faces",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from facenormals3d.console import add_common_options

    p = sub.add_parser("bench", help="run a benchmark (prints a table, writes JSON)",
                       description="Measure speed and accuracy of one stage. Timings are "
                                   "compared with a reference run in the same process.")
    inner = p.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, module_name in BENCHES.items():
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        q = inner.add_parser(name, help=module.DESCRIPTION, description=module.DESCRIPTION)
        q.add_argument("--out", default=None, help="write the JSON report here "
                       "(default: bench-NAME.json in the current folder)")
        add_common_options(q)
        module.add_arguments(q)
        q.set_defaults(func=run, bench_module=module_name)


def run(args: argparse.Namespace) -> int:
    from facenormals3d.console import emit
    from facenormals3d.outputs import write_json

    module = importlib.import_module(args.bench_module)
    report = module.run(args)
    out = args.out or f"bench-{report.name}.json"
    write_json(out, report.to_dict())
    emit(args, report.to_dict(), report.table() + f"\nwrote {out}")
    return int(ExitCode.OK)

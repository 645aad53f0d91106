"""``python -m perfsage.evaluation DATASET --target T --out DIR ...``: ``perfsage evaluate`` on its own."""

import argparse
import sys

from .._core import PerfSageError
from .cli import add_parser


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m perfsage.evaluation")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    args = parser.parse_args(["evaluate"] + sys.argv[1:])
    try:
        return args.run(args)
    except (PerfSageError, ValueError) as e:
        print(f"perfsage: error: {e}", file=sys.stderr)
        return 1


raise SystemExit(main())

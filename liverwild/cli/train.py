"""lw_train: train one fold (not available yet in this version)."""
from __future__ import annotations

import argparse
import sys

from .common import not_available


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="lw_train", description="train one fold — not available yet in this version.")


def main(argv=None) -> int:
    return not_available("lw_train", "planned; see the issue tracker", build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

"""lw_plan_and_preprocess: fingerprint, plan and preprocess raw datasets (not available yet in this version)."""
from __future__ import annotations

import argparse
import sys

from .common import not_available


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="lw_plan_and_preprocess", description="fingerprint, plan and preprocess raw datasets — not available yet in this version.")


def main(argv=None) -> int:
    return not_available("lw_plan_and_preprocess", "planned; see the issue tracker", build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

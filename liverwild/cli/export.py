"""lw_export: write a trained model in a form another runtime reads (``--onnx``: one ONNX graph beside the
checkpoint, which ``lw_predict --runtime onnx|auto`` runs without torch)."""

from __future__ import annotations

import argparse
import sys

from .common import add_folder_options, add_logging_options, parse, run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lw_export",
        description="Export a trained 2D model's teacher + head + decoder as one ONNX graph "
        "(<checkpoint>.onnx, dynamic batch, liver probabilities at the slice size) with its plans in "
        "<checkpoint>.onnx.json, beside the checkpoint; lw_predict --runtime onnx (or auto) then runs it "
        "with onnxruntime, without importing torch. See documentation/prediction_and_evaluation.md.",
    )
    p.add_argument("model", metavar="MODEL", help="a trained model folder, a fold name under $LW_results, or 'default'")
    p.add_argument("--onnx", action="store_true", help="export to ONNX (the one format so far; required)")
    p.add_argument("--checkpoint", default="best", help="best, final, latest or a file name (default: best)")
    p.add_argument("--trainer", default=None, help="with a fold name: which trainer's model")
    add_folder_options(p, "results")
    add_logging_options(p)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    if not args.onnx:
        parser.error("choose the format to export: --onnx")

    def work():
        import json

        from ..inference.export import export_onnx

        graph = export_onnx(args.model, args.checkpoint, args.results, args.trainer)
        side = json.loads(graph.with_suffix(".onnx.json").read_text(encoding="utf-8"))
        print(
            f"{graph} written ({graph.stat().st_size / 2**20:.1f} MiB; onnxruntime vs torch max abs difference "
            f"{side['max_abs_difference']:.1e}); lw_predict -m {args.model} now runs it with --runtime onnx or auto"
        )

    return run(work)


if __name__ == "__main__":
    sys.exit(main())

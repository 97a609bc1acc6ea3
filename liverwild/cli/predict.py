"""lw_predict: segment every scan in a file or folder; masks keep the input geometry."""

from __future__ import annotations

import argparse
import os
import sys

from .common import add_folder_options, add_logging_options, at_least, parse, run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lw_predict",
        description="Segment the liver in NIfTI/NRRD/MHA files and DICOM "
        "series folders; writes <case>.nii.gz (uint8 0/1; a 3d multi-organ model: one label per organ, "
        "listed in prediction_report.json) in each input's geometry, or DICOM-SEG objects for DICOM inputs; "
        "optionally statistics.csv and report.html.",
    )
    p.add_argument("-i", "--input", required=True, help="a scan file, a DICOM series folder, or a folder of them")
    p.add_argument("-o", "--output", required=True, help="output folder (must differ from the input folder)")
    p.add_argument(
        "-m",
        "--model",
        default="default",
        help="trained model folder, a fold name under $LW_results, or 'default' (the default: the model "
        "shipped with liverwild, trained on synthetic phantoms only — not a medical device)",
    )
    p.add_argument("--trainer", default=None, help="with a fold name: which trainer's model")
    p.add_argument("--checkpoint", default="best", help="best, final, latest or a file name")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--batch-size",
        type=at_least(1),
        default=None,
        help="slices per batch (default 128 on GPU; on CPU 16, 4 with --runtime onnx)",
    )
    p.add_argument("--modality", default="auto", choices=["auto", "CT", "MR"])
    p.add_argument("--backbone-weights", default=None, metavar="FILE", help="if the model's weights file moved")
    p.add_argument("--save-probabilities", action="store_true", help="also write <case>_prob.nii.gz (float32)")
    p.add_argument("--overlays", action="store_true", help="QC picture per scan in OUT/overlays/")
    p.add_argument(
        "--output-type",
        nargs="+",
        default=["nifti"],
        choices=["nifti", "dicom-seg"],
        help="nifti (default: <case>.nii.gz), dicom-seg (a DICOM series input also gets <case>_seg.dcm, a DICOM "
        "Segmentation referencing it; needs highdicom: pip install 'liverwild[dicom]'; other inputs get NIfTI), "
        "or both: --output-type nifti dicom-seg",
    )
    p.add_argument(
        "--statistics",
        action="store_true",
        help="also write OUT/statistics.csv: per scan and organ the volume (ml), intensity mean/median/s.d. "
        "(HU for CT), bounding box (LPS mm) and the components post-processing removed",
    )
    p.add_argument(
        "--report",
        default="auto",
        choices=["auto", "html", "none"],
        help="html: write OUT/report.html, a self-contained QC page (views, flags, statistics, timing; sortable); "
        "none: do not; auto (default): html when the input holds more than one scan",
    )
    steps = p.add_mutually_exclusive_group()
    steps.add_argument(
        "--postprocess",
        nargs="+",
        metavar="STEP",
        default=None,
        help="apply only these post-processing steps of the liver mask (default: largest_component, "
        "location, z_continuity, fill_holes, plausibility; opt-in: bridges; bridges and location refine "
        "largest_component; other names are refused; 3d organ maps take largest_component alone). "
        "See documentation/prediction_and_evaluation.md",
    )
    steps.add_argument(
        "--no-postprocess",
        action="store_true",
        help="skip the post-processing (liver: every step above; 3d organ maps: largest component of every organ)",
    )
    p.add_argument(
        "--liver-only",
        action="store_true",
        help="3d (multi-organ) models: write the liver alone as a 0/1 mask, to compare with the 2D models",
    )
    p.add_argument(
        "--part",
        type=at_least(0),
        default=0,
        help="with --num-parts N: segment only scans K, K+N, ... of the sorted folder (0-based), so N "
        "processes or machines share it (under torchrun the ranks are the parts)",
    )
    p.add_argument("--num-parts", type=at_least(1), default=1, help="number of parts the folder is split into")
    p.add_argument(
        "--int8-teacher",
        action="store_true",
        help="CPU only, transformer teachers: int8 linear layers in the teacher (faster, off by default; "
        "its mask agreement with float32 is measured by benchmarks/bench_predict.py --int8)",
    )
    p.add_argument(
        "--runtime",
        default="auto",
        choices=["auto", "torch", "onnx"],
        help="onnx: run the graph 'lw_export MODEL --onnx' wrote beside the checkpoint with onnxruntime, without "
        "importing torch (faster start on CPU); refused when it is missing or stale, or with options only torch "
        "honours (--int8-teacher, --backbone-weights, torchrun, mps). auto (default): onnx when it would be "
        "accepted (and no GPU is left unused), else torch. torch: always torch",
    )
    p.add_argument(
        "--continue",
        dest="resume",
        action="store_true",
        help="resume an interrupted run into OUT: skip the scans it finished with the same model, runtime, "
        "device type, liverwild revision and output options whose inputs are unchanged and outputs still there",
    )
    p.add_argument("--no-progress", action="store_true")
    add_folder_options(p, "results")
    add_logging_options(p)
    return p


def main(argv=None) -> int:
    args = parse(build_parser(), argv)
    from ..inference.driver import predict

    def work():
        report = predict(
            args.input,
            args.output,
            model=args.model,
            results=args.results,
            trainer=args.trainer,
            checkpoint=args.checkpoint,
            device=args.device,
            batch_size=args.batch_size,
            postprocess=args.postprocess if args.postprocess is not None else not args.no_postprocess,
            save_probabilities=args.save_probabilities,
            overlays=args.overlays,
            modality=args.modality,
            backbone_weights=args.backbone_weights,
            progress=not args.no_progress,
            part=args.part,
            num_parts=args.num_parts,
            int8_teacher=args.int8_teacher,
            liver_only=args.liver_only,
            output_types=tuple(args.output_type),
            statistics=args.statistics,
            report=args.report,
            runtime=args.runtime,
            resume=args.resume,
        )
        if int(os.environ.get("RANK", "0")) != 0:  # torchrun (process_rank without torch): rank 0 reports
            return 1 if report["n_failed"] else 0
        name = "prediction_report.json"
        if args.num_parts > 1:
            name = f"prediction_report.part{args.part}of{args.num_parts}.json"
        extras = [v for v in (report.get("outputs") or {}).values() if v]
        also = f"; also {', '.join(extras)}" if extras else ""
        print(f"{report['n_ok']} scan(s) segmented, {report['n_failed']} failed → {args.output} (report: {name}{also})")
        return 1 if report["n_failed"] else 0

    return run(work)


if __name__ == "__main__":
    sys.exit(main())

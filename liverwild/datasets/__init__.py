"""The raw dataset format (nnU-Net compatible) and its verifier."""

from .format import DatasetInfo, case_files, find_dataset, load_dataset_json, organ_file, write_dataset_json
from .verify import Problem, VerificationReport, verify_dataset

__all__ = [
    "DatasetInfo",
    "case_files",
    "find_dataset",
    "load_dataset_json",
    "organ_file",
    "write_dataset_json",
    "Problem",
    "VerificationReport",
    "verify_dataset",
]

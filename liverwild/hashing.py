"""File digests, torch-free (the ONNX runtime path reads them without importing torch)."""

from __future__ import annotations

import hashlib


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, hex, read in 4 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()

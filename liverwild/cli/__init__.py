"""Console scripts: each module is a thin argparse wrapper around an importable function."""

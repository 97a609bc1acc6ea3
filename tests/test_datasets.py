import json
import shutil

import pytest

from liverwild.cli import convert as convert_cli
from liverwild.datasets import find_dataset, load_dataset_json, verify_dataset
from liverwild.errors import ConfigurationError
from liverwild.io import read_image, write_volume
from liverwild.phantoms import write_domain


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    write_domain("PhantomNativeCT", root, n_cases=3, scale=0.3, n_slices=12, progress=False)
    return root / "PhantomNativeCT"


@pytest.fixture
def dataset(pristine, tmp_path):
    folder = tmp_path / "PhantomNativeCT"
    shutil.copytree(pristine, folder)
    return folder


def messages(report):
    return [(p.path, p.message, p.severity) for p in report.problems]


def test_pristine_dataset_passes(dataset):
    report = verify_dataset(dataset)
    assert report.ok and report.cases_checked == 3 and report.problems == []


def test_missing_label(dataset):
    label = dataset / "labelsTr" / "phantomnativect_001.nii.gz"
    label.unlink()
    report = verify_dataset(dataset)
    assert not report.ok
    assert any(p == str(label) and "missing" in m for p, m, _ in messages(report))


def test_label_geometry_mismatch(dataset):
    label_path = dataset / "labelsTr" / "phantomnativect_002.nii.gz"
    label = read_image(label_path, dtype=None)
    g = label.geometry
    shifted = type(g)(g.size, (g.spacing[0] * 1.1, g.spacing[1], g.spacing[2]), g.origin, g.direction)
    write_volume(label.array, shifted, label_path)
    report = verify_dataset(dataset)
    assert [(p, s) for p, m, s in messages(report) if "geometry differs" in m and "spacing" in m] == [
        (str(label_path), "error")
    ]


def test_unknown_label_values(dataset):
    label_path = dataset / "labelsTr" / "phantomnativect_000.nii.gz"
    label = read_image(label_path, dtype=None)
    label.array[0, 0, 0] = 7
    write_volume(label.array, label.geometry, label_path)
    report = verify_dataset(dataset)
    assert any(p == str(label_path) and "[7]" in m for p, m, _ in messages(report))


def test_unreadable_image_and_other_cases_still_checked(dataset):
    image = dataset / "imagesTr" / "phantomnativect_000_0000.nii.gz"
    image.write_bytes(b"not a nifti at all" * 10)
    label_path = dataset / "labelsTr" / "phantomnativect_002.nii.gz"
    label = read_image(label_path, dtype=None)
    label.array[:] = 0
    write_volume(label.array, label.geometry, label_path)
    report = verify_dataset(dataset)
    found = messages(report)
    assert any(p == str(image) and "cannot be read" in m for p, m, _ in found)
    assert (str(label_path), "contains no liver voxels", "warning") in found
    assert report.cases_checked == 3


def test_unlisted_and_misnamed_files(dataset):
    shutil.copy(dataset / "imagesTr" / "phantomnativect_000_0000.nii.gz", dataset / "imagesTr" / "extra_0000.nii.gz")
    (dataset / "imagesTr" / "readme.txt").write_text("x")
    report = verify_dataset(dataset)
    paths = {p for p, _, _ in messages(report)}
    assert str(dataset / "imagesTr" / "extra_0000.nii.gz") in paths
    assert str(dataset / "imagesTr" / "readme.txt") in paths


def test_bad_dataset_json(dataset):
    (dataset / "dataset.json").write_text("{ not json")
    report = verify_dataset(dataset)
    assert not report.ok and "not valid JSON" in report.problems[0].message
    (dataset / "dataset.json").write_text(json.dumps({"labels": {"background": 0}, "modality": "CT"}))
    assert "liver" in verify_dataset(dataset).problems[0].message


def test_nnunet_dataset_json_is_understood(dataset):
    raw = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))
    nnunet = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "liver": 1},
        "numTraining": 3,
        "file_ending": ".nii.gz",
    }
    (dataset / "dataset.json").write_text(json.dumps(nnunet))
    info = load_dataset_json(dataset)
    assert info.modality == "CT" and info.cases == raw["cases"]
    assert verify_dataset(dataset).ok


def test_find_dataset_by_name_and_nnunet_id(tmp_path):
    (tmp_path / "Dataset003_Liver").mkdir()
    assert find_dataset("3", tmp_path).name == "Dataset003_Liver"
    with pytest.raises(ConfigurationError, match="available: Dataset003_Liver"):
        find_dataset("Nope", tmp_path)


def test_verify_command_exit_codes_and_all_datasets_reported(dataset, pristine, tmp_path, capsys, monkeypatch):
    (dataset / "labelsTr" / "phantomnativect_001.nii.gz").unlink()
    good = tmp_path / "Good"
    shutil.copytree(pristine, good)
    monkeypatch.setenv("LW_raw", str(tmp_path))
    assert convert_cli.main(["verify", "PhantomNativeCT", "Good"]) == 1
    out = capsys.readouterr().out
    assert "phantomnativect_001.nii.gz" in out and "Good: OK" in out
    assert convert_cli.main(["verify", "Good"]) == 0

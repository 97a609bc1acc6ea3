"""Medical image I/O with geometry: NIfTI, NRRD, MetaImage, DICOM series; reorientation."""

from .dicom import (
    dicom_tag,
    list_series,
    read_dicom_files,
    read_dicom_series,
    sort_by_position,
    sorted_series_files,
    write_dicom_series,
)
from .geometry import Geometry
from .image import (
    IMAGE_SUFFIXES,
    Volume,
    check_not_constant,
    image_suffix,
    is_supported,
    read_aligned_label,
    read_geometry,
    read_image,
    read_label,
    read_sitk,
    write_mask,
    write_volume,
)
from .orientation import Reorientation, stored_geometry

__all__ = [
    "Geometry",
    "Volume",
    "Reorientation",
    "stored_geometry",
    "read_image",
    "read_label",
    "read_aligned_label",
    "read_sitk",
    "read_geometry",
    "write_mask",
    "write_volume",
    "image_suffix",
    "is_supported",
    "IMAGE_SUFFIXES",
    "list_series",
    "read_dicom_series",
    "sorted_series_files",
    "write_dicom_series",
    "read_dicom_files",
    "sort_by_position",
    "dicom_tag",
    "check_not_constant",
]

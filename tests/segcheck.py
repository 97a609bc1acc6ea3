"""Reading a DICOM-SEG back without liverwild's or highdicom's help (pydicom and SimpleITK only), for
the DICOM-SEG tests."""

import numpy as np
import SimpleITK as sitk


def seg_on_source_grid(seg_path, series_folder, reference: sitk.Image) -> tuple:
    """``(label map on reference's grid, segment numbers → dataset)`` rebuilt from the SEG with pydicom: each
    frame goes to the source slice it references, located by that slice's ImagePositionPatient through
    ``reference.TransformPhysicalPointToIndex``; every frame's plane position must be its source slice's."""
    import pydicom

    seg = pydicom.dcmread(seg_path)
    sources = {}
    for f in series_folder.iterdir():
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        sources[ds.SOPInstanceUID] = ds
    frames = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
    out = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint8)
    shared = seg.SharedFunctionalGroupsSequence[0]
    for frame, item in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        identification = item if "SegmentIdentificationSequence" in item else shared  # shared by one segment
        number = int(identification.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        source = sources[uid]
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        assert np.allclose(position, [float(v) for v in source.ImagePositionPatient], atol=1e-4)
        i, j, k = reference.TransformPhysicalPointToIndex(position)
        assert (i, j) == (0, 0)
        out[k][frame > 0] = number
    return out, {int(s.SegmentNumber): s for s in seg.SegmentSequence}

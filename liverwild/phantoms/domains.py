"""Imaging domains: how one anatomy looks on a given scanner and protocol.

A :class:`Domain` fixes grid (field of view, matrix, slice spacing, z coverage, storage orientation),
contrast (mean value and texture per tissue), point-spread blur, noise, calibration and artefacts.
The four default domains differ the way public liver datasets do (BTCV/LiTS/IRCADb CT phases and
CHAOS T2-SPIR MR). Register your own with :func:`register_domain`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

LPS = (1, 0, 0, 0, 1, 0, 0, 0, 1)
RAS = (-1, 0, 0, 0, -1, 0, 0, 0, 1)  # how a NIfTI with a RAS+ diagonal affine reads in LPS
RAI = (-1, 0, 0, 0, -1, 0, 0, 0, -1)  # RAS with slices stored superior → inferior
LAS = (1, 0, 0, 0, -1, 0, 0, 0, 1)

# Mean value and low-frequency texture s.d. per tissue. CT in HU; MR in arbitrary units.
_CT_COMMON = {
    "AIR": (-1000, 0),
    "FAT": (-100, 12),
    "MUSCLE": (50, 8),
    "BONE": (750, 120),
    "MARROW": (230, 40),
    "CSF": (15, 5),
    "STOMACH": (40, 8),
    "BOWEL": (35, 10),
    "GAS": (-950, 20),
    "LUNG": (-840, 30),
    "TABLE": (-420, 10),
    "DISC": (90, 10),
    "GALLBLADDER": (12, 4),
    "CARTILAGE": (140, 45),
    "FLUID": (8, 4),
    "STOOL": (-40, 70),
    "ORAL_CONTRAST": (380, 60),
}
CT_NATIVE = {
    **_CT_COMMON,
    "LIVER": (58, 6),
    "LIVER_VESSEL": (42, 4),
    "LESION": (30, 6),
    "SPLEEN": (46, 5),
    "KIDNEY_CORTEX": (32, 4),
    "KIDNEY_MEDULLA": (28, 4),
    "AORTA": (42, 3),
    "VEIN": (40, 3),
    "HEART": (42, 5),
    "PANCREAS": (40, 6),
}
CT_PORTAL = {
    **_CT_COMMON,
    "LIVER": (112, 8),
    "LIVER_VESSEL": (175, 10),
    "LESION": (58, 10),
    "SPLEEN": (122, 8),
    "KIDNEY_CORTEX": (175, 10),
    "KIDNEY_MEDULLA": (140, 10),
    "AORTA": (165, 8),
    "VEIN": (160, 8),
    "HEART": (150, 10),
    "BOWEL": (60, 15),
    "STOMACH": (85, 12),
    "PANCREAS": (100, 10),
}
CT_ARTERIAL = {
    **_CT_COMMON,
    "LIVER": (60, 10),
    "LIVER_VESSEL": (105, 10),
    "LESION": (120, 25),
    "SPLEEN": (135, 30),
    "KIDNEY_CORTEX": (230, 20),
    "KIDNEY_MEDULLA": (80, 10),
    "AORTA": (320, 15),
    "VEIN": (75, 8),
    "HEART": (260, 20),
    "BOWEL": (50, 12),
    "PANCREAS": (115, 14),
}
MR_T2 = {
    "AIR": (4, 0),
    "FAT": (70, 12),
    "MUSCLE": (55, 8),
    "LIVER": (110, 10),
    "LIVER_VESSEL": (30, 8),
    "LESION": (420, 60),
    "SPLEEN": (260, 20),
    "KIDNEY_CORTEX": (290, 25),
    "KIDNEY_MEDULLA": (360, 25),
    "AORTA": (25, 8),
    "VEIN": (35, 10),
    "BONE": (15, 4),
    "MARROW": (90, 15),
    "CSF": (600, 40),
    "STOMACH": (90, 15),
    "BOWEL": (300, 60),
    "GAS": (5, 2),
    "LUNG": (10, 4),
    "HEART": (80, 20),
    "GALLBLADDER": (640, 40),
    "TABLE": (0, 0),
    "DISC": (330, 30),
    "PANCREAS": (95, 12),
    "CARTILAGE": (45, 10),
    "FLUID": (560, 50),
    "STOOL": (140, 70),
    "ORAL_CONTRAST": (600, 60),
}


@dataclass(frozen=True)
class Domain:
    name: str
    modality: str  # "CT" or "MR"
    description: str
    intensities: dict  # tissue name → (mean, texture s.d.)
    fov_mm: float = 380.0  # in-plane field of view (square)
    matrix: int = 160  # in-plane voxels at scale 1
    slice_mm: float = 2.5  # slice spacing = thickness
    z_range: tuple = (-230.0, 30.0)  # covered z (mm) relative to the right diaphragm dome
    direction: tuple = LPS  # storage orientation (signed permutation, row-major)
    psf_mm: tuple = (0.8, 1.0)  # Gaussian blur σ in-plane and through-plane (× slice_mm)
    noise: float = 10.0  # noise σ in output units (CT: HU; MR: before gain)
    noise_corr: float = 0.7  # σ (voxels) of the in-plane noise correlation
    gain: tuple = (1.0, 1.0)  # per-case multiplicative calibration range
    offset: tuple = (0.0, 0.0)  # per-case additive calibration range
    streaks: float = 0.0  # CT streak artefact amplitude (HU); 0 = none
    streak_fraction: float = 0.0  # fraction of slices with streaks
    bias_field: float = 0.0  # MR multiplicative bias amplitude (e.g. 0.35 → ±35 %)
    circular_fov_value: float | None = None  # CT value outside the reconstruction circle
    ghosting: float = 0.0  # motion ghost amplitude (fraction of the image), 0 = none
    anatomy_scale: tuple = (1.0, 1.0, 1.0)  # (x, y, z) stretch of the patient (body habitus, organ size)
    dtype: str = "int16"
    cases: int = 10  # default number of cases
    extra: dict = field(default_factory=dict)

    def scaled(self, scale: float) -> Domain:
        """The same protocol with an in-plane matrix scaled by ``scale`` (field of view kept)."""
        return replace(self, matrix=max(16, int(round(self.matrix * scale))))

    @property
    def spacing(self):
        """(sx, sy, sz) in mm."""
        s = self.fov_mm / self.matrix
        return (s, s, self.slice_mm)

    def n_slices(self) -> int:
        return int(round((self.z_range[1] - self.z_range[0]) / self.slice_mm))


DOMAINS: dict = {}


def register_domain(domain: Domain) -> Domain:
    DOMAINS[domain.name] = domain
    return domain


register_domain(
    Domain(
        "PhantomNativeCT",
        "CT",
        "non-contrast CT, thick 5 mm slices, noisy, LPS storage",
        CT_NATIVE,
        fov_mm=420,
        matrix=160,
        slice_mm=5.0,
        z_range=(-260, 40),
        direction=LPS,
        psf_mm=(1.0, 0.9),
        noise=28.0,
        noise_corr=0.8,
        gain=(0.98, 1.02),
        offset=(-12, 12),
    )
)
register_domain(
    Domain(
        "PhantomPortalCT",
        "CT",
        "portal-venous CT, thin 2.5 mm slices, low noise, sharp, RAS storage",
        CT_PORTAL,
        fov_mm=380,
        matrix=192,
        slice_mm=2.5,
        z_range=(-230, 20),
        direction=RAS,
        psf_mm=(0.6, 0.7),
        noise=9.0,
        noise_corr=0.6,
        gain=(0.99, 1.01),
        offset=(-5, 5),
    )
)
register_domain(
    Domain(
        "PhantomArterialCT",
        "CT",
        "arterial CT, small field of view, slices stored superior→inferior, "
        "streak artefacts, circular reconstruction field, shifted HU calibration",
        CT_ARTERIAL,
        fov_mm=330,
        matrix=160,
        slice_mm=3.0,
        z_range=(-190, 25),
        direction=RAI,
        psf_mm=(0.7, 0.8),
        noise=16.0,
        noise_corr=0.7,
        gain=(1.02, 1.08),
        offset=(10, 25),
        streaks=70.0,
        streak_fraction=0.35,
        circular_fov_value=-2048,
    )
)
register_domain(
    Domain(
        "PhantomT2MR",
        "MR",
        "T2-weighted fat-suppressed MR (CHAOS T2-SPIR-like), 7 mm slices, bias field, "
        "Rician noise, arbitrary units, LAS storage",
        MR_T2,
        fov_mm=380,
        matrix=144,
        slice_mm=7.0,
        z_range=(-230, 30),
        direction=LAS,
        psf_mm=(0.9, 0.5),
        noise=12.0,
        noise_corr=0.5,
        gain=(0.6, 3.0),
        bias_field=0.35,
        dtype="uint16",
    )
)

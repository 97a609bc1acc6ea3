"""The phantom generator's version: it changes whenever the anatomy, the appearance model or the
sampling changes, so that datasets, caches and models built from older phantoms can be told apart.

1: ellipsoid anatomy around the liver. 2: the filled abdomen (tubular colon, duodenum and small bowel
with contents, pancreas, diaphragm, caudate lobe, liver shape families, pelvis), nonlinear deformation,
slab partial volume, multi-scale textures, hard-negative and independent CT contrasts.
"""

GENERATOR_VERSION = 2

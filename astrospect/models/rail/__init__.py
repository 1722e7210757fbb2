"""The field's photo-z codes as challengers, run through LSST DESC RAIL's own stages (the ``rail`` extra).

Each code (FlexZBoost, CMNN, DNF, BPZ) is informed and run by RAIL's informer and estimator stages, driven
from Python without a ceci pipeline: :mod:`.stages` runs a stage and turns its qp ensemble into this
system's :class:`~astrospect.pdf.bins.RedshiftPdfs`; :mod:`.catalogue` builds the magnitude table the stages
read from the cutouts' aperture photometry; :mod:`.codes` holds the registry's builders; :mod:`.filters`
writes the SDSS filter curves BPZ needs (docs/reference/field-codes.md).
"""

"""Importers: turn cutout files a user already has into shards in the landing zone.

One module per layout reads rows (:mod:`.npz` for the Pasquet et al. 2019 cube, :mod:`.hdf5` for cube
collections, :mod:`.fits` for per-galaxy FITS cutouts); :mod:`.convert` brings pixels to what the models
expect (nanomaggies, 0.396"/pixel, 32x32); :mod:`.writer` rejects unusable rows, writes the shards with the
project's shard writer and keeps the progress file that makes an import resumable. The nightly DAG then
ingests and validates the shards like simulated ones.
"""

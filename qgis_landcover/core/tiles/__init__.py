# SPDX-License-Identifier: GPL-2.0-or-later
"""Many tiles, one job: a virtual mosaic (GDAL VRT) over many input rasters cut into a
grid of chunks, each chunk one task that any executor runs (:mod:`.local_executor`:
worker processes; :mod:`.dask_executor`: a Dask cluster), with a GeoPackage manifest that
makes the job resumable and per-class areas for the CRS.

- :mod:`.job`: :class:`~.job.TilesJob` (what to classify, with which model, where to)
  and :class:`~.job.Chunk` (one window of the mosaic), :func:`~.job.build_job`,
  :func:`~.job.plan_chunks`;
- :mod:`.chunk_runner`: :func:`~.chunk_runner.run_chunk`, the one task, picklable,
  never raising for bad data;
- :mod:`.executor`: the :class:`~.executor.ChunkExecutor` protocol executors follow;
- :mod:`.manifest`: the GeoPackage record of every chunk (resume);
- :mod:`.areas`: pixel areas for projected and geographic CRSs, the areas CSV;
- :mod:`.run`: :func:`~.run.run_tiles_job`, the driver (plan, skip, run, record, mosaic).
"""

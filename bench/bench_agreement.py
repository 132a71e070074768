# SPDX-License-Identifier: GPL-2.0-or-later
"""Agreement throughput on the real 100-megapixel Chesapeake tile pair.

The 10,000 x 10,000 1 m tile in ``data/chesapeake_lulc_1m`` exists in the 13-class
set (nodata 0) and the 7-class set (nodata 15); the 13 classes remapped to 7 must agree
with the 7-class tile everywhere. Measured in one run, each in its own process:

* this project's core (:func:`qgis_landcover.core.accuracy.agreement.assess_agreement`),
  reading both GeoTIFFs included; best and median of ``--repeat`` runs, CPU time and
  peak RSS (``ru_maxrss`` of a process that does nothing else);
* scikit-learn ``confusion_matrix`` on the same pixels, already in memory (reading and
  remapping not timed, so the comparison favours scikit-learn);
* GRASS GIS ``r.kappa`` when ``grass`` is on PATH: import (``r.in.gdal``, both tiles)
  and ``r.kappa`` (on an ``r.reclass`` of the 13-class map) timed separately, net of
  GRASS's start-up time (measured with ``g.version``).

It then prints throughput (Mpx/s), the ratios and the targets of issue #4. The
matrices and kappa of the three are checked to agree.

Usage: ``python bench/bench_agreement.py [--repeat 3] [--skip-sklearn] [--skip-grass]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TILES = ROOT / "data" / "chesapeake_lulc_1m"
CLASSIFIED = TILES / "Baywide_13Class_20132014_E1300000_N1770000.tif"
REFERENCE = TILES / "Baywide_7class_20132014_E1300000_N1770000.tif"
REMAP = {1: 1, 2: 3, 3: 2, 4: 2, 5: 3, 6: 4, 7: 5, 8: 5, 9: 6, 10: 2, 11: 2, 12: 2}
CLASSES = [1, 2, 3, 4, 5, 6]
MEGAPIXELS = 100.0  # 10,000 x 10,000 pixel pairs
TARGETS = {"vs_r_kappa": 10.0, "vs_sklearn": 3.0, "mpx_per_s": 100.0, "rss_mb": 500.0}


def peak_rss_mb() -> float:
    import resource

    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_core() -> dict[str, Any]:
    """One timed agreement run, in a fresh process."""
    sys.path.insert(0, str(ROOT))
    from qgis_landcover.core.accuracy.agreement import assess_agreement

    baseline = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    statistics = assess_agreement(CLASSIFIED, REFERENCE, classified_remap=REMAP).statistics
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "seconds": wall,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_imports_mb": baseline,
        "classes": statistics.class_values,
        "matrix": [list(row) for row in statistics.matrix],
        "kappa": statistics.kappa.value,
        "observations": statistics.observations,
    }


def child_sklearn() -> dict[str, Any]:
    """scikit-learn's confusion_matrix on both tiles held in memory, in a fresh process."""
    import numpy as np
    from osgeo import gdal
    from sklearn.metrics import confusion_matrix

    gdal.UseExceptions()
    started = time.perf_counter()
    classified_ds, reference_ds = gdal.Open(str(CLASSIFIED)), gdal.Open(str(REFERENCE))
    classified = classified_ds.GetRasterBand(1).ReadAsArray()
    reference = reference_ds.GetRasterBand(1).ReadAsArray()
    lut = np.arange(256, dtype=np.uint8)
    for key, value in REMAP.items():
        lut[key] = value
    predicted = lut[classified].ravel()
    reference = reference.ravel()
    prepare = time.perf_counter() - started
    # Pixels whose value is not in ``labels`` (the nodata 0 and 15) are left out by
    # scikit-learn itself, exactly like the ignored pixels of the core.
    started, cpu = time.perf_counter(), time.process_time()
    matrix = confusion_matrix(reference, predicted, labels=CLASSES)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "prepare_seconds": prepare,
        "peak_rss_mb": peak_rss_mb(),
        "matrix_rows_reference": matrix.tolist(),
    }


def run_child(kind: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", kind],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{completed.stdout}\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def grass(mapset: Path, *args: str) -> tuple[float, float]:
    """Run one GRASS module in ``mapset``; return its wall and CPU time in seconds."""
    started, cpu = time.perf_counter(), children_cpu()
    completed = subprocess.run(
        ["grass", str(mapset), "--exec", *args], capture_output=True, text=True, check=False
    )
    seconds, cpu = time.perf_counter() - started, children_cpu() - cpu
    if completed.returncode != 0:
        raise RuntimeError(f"grass {' '.join(args)} failed:\n{completed.stderr[-2000:]}")
    return seconds, cpu


def run_grass() -> dict[str, Any] | None:
    if shutil.which("grass") is None:
        print("GRASS GIS: skipped (no 'grass' on PATH; make bench installs grass-core).")
        return None
    with tempfile.TemporaryDirectory(prefix="bench_agreement_grass_") as folder:
        location = Path(folder) / "location"
        subprocess.run(
            ["grass", "-c", str(REFERENCE), "-e", str(location)],
            capture_output=True,
            check=True,
        )
        mapset = location / "PERMANENT"
        startup, startup_cpu = min(grass(mapset, "g.version") for _ in range(3))
        first = grass(mapset, "r.in.gdal", f"input={CLASSIFIED}", "output=c13", "--quiet")
        second = grass(mapset, "r.in.gdal", f"input={REFERENCE}", "output=c7", "--quiet")
        rules = Path(folder) / "rules.txt"
        rules.write_text("".join(f"{k} = {v}\n" for k, v in REMAP.items()), encoding="utf-8")
        reclass, _ = grass(mapset, "r.reclass", "input=c13", "output=c13to7", f"rules={rules}")
        grass(mapset, "g.region", "raster=c7")
        output = Path(folder) / "kappa.txt"
        kappa_seconds, kappa_cpu = grass(
            mapset,
            "r.kappa",
            "classification=c13to7",
            "reference=c7",
            f"output={output}",
            "--quiet",
        )
        text = output.read_text(encoding="utf-8", errors="replace")
    kappa = re.search(r"Kappa\s+Kappa Variance\s+(\S+)\s+(\S+)", text)
    observed = re.search(r"Total Obs\s+% Observed Correct\s+(\d+)\s+(\d+)", text)
    return {
        "startup_seconds": startup,
        "import_seconds": first[0] + second[0] - 2 * startup,
        "import_cpu_seconds": first[1] + second[1] - 2 * startup_cpu,
        "reclass_seconds": reclass - startup,
        "r_kappa_seconds": kappa_seconds - startup,
        "r_kappa_cpu_seconds": kappa_cpu - startup_cpu,
        "kappa": float(kappa.group(1)) if kappa else None,
        "observations": int(observed.group(2)) if observed else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--skip-grass", action="store_true")
    parser.add_argument("--child", choices=["core", "sklearn"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child_core() if args.child == "core" else child_sklearn()
        print(json.dumps(result))
        return 0

    print(
        f"Agreement benchmark: {CLASSIFIED.name} (13 classes -> 7) vs {REFERENCE.name}, "
        f"{MEGAPIXELS:g} Mpx; {os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    core_runs = [run_child("core") for _ in range(max(1, args.repeat))]
    best = min(run["seconds"] for run in core_runs)
    median = statistics.median(run["seconds"] for run in core_runs)
    cpu = min(run["cpu_seconds"] for run in core_runs)
    core = core_runs[0]
    rss = max(run["peak_rss_mb"] for run in core_runs)
    print(
        f"core (reading included): best {best:.2f} s = {MEGAPIXELS / best:.0f} Mpx/s, median "
        f"{median:.2f} s over {len(core_runs)} runs; CPU {cpu:.2f} s "
        f"(= {MEGAPIXELS / cpu:.0f} Mpx per CPU-second); peak RSS {rss:.0f} MB "
        f"({core['rss_after_imports_mb']:.0f} MB after imports); "
        f"{core['observations']:,} pixels compared, kappa {core['kappa']}"
    )
    ratios: dict[str, tuple[float, float]] = {}  # name -> (wall ratio, CPU ratio)
    checks: list[str] = []

    if not args.skip_sklearn:
        sk = run_child("sklearn")
        ratios["scikit-learn"] = (sk["seconds"] / best, sk["cpu_seconds"] / cpu)
        print(
            f"scikit-learn confusion_matrix (arrays in memory, reading not timed): "
            f"{sk['seconds']:.2f} s = {MEGAPIXELS / sk['seconds']:.1f} Mpx/s, CPU "
            f"{sk['cpu_seconds']:.2f} s; peak RSS {sk['peak_rss_mb']:.0f} MB"
        )
        core_matrix = _aligned(core["classes"], core["matrix"])
        transposed = [list(row) for row in zip(*sk["matrix_rows_reference"], strict=True)]
        checks.append(f"matrix equals scikit-learn's: {core_matrix == transposed}")

    if not args.skip_grass:
        gr = run_grass()
        if gr is not None:
            ratios["r.kappa"] = (gr["r_kappa_seconds"] / best, gr["r_kappa_cpu_seconds"] / cpu)
            ratios["r.in.gdal + r.kappa"] = (
                (gr["import_seconds"] + gr["r_kappa_seconds"]) / best,
                (gr["import_cpu_seconds"] + gr["r_kappa_cpu_seconds"]) / cpu,
            )
            print(
                f"GRASS: import (r.in.gdal x 2) {gr['import_seconds']:.2f} s (CPU "
                f"{gr['import_cpu_seconds']:.2f} s), r.reclass {gr['reclass_seconds']:.2f} s, "
                f"r.kappa {gr['r_kappa_seconds']:.2f} s = "
                f"{MEGAPIXELS / gr['r_kappa_seconds']:.1f} Mpx/s (CPU "
                f"{gr['r_kappa_cpu_seconds']:.2f} s); net of {gr['startup_seconds']:.2f} s "
                "GRASS start-up each"
            )
            checks.append(
                f"kappa equals r.kappa's: {gr['kappa'] == round(core['kappa'], 6)}; "
                f"observations equal: {gr['observations'] == core['observations']}"
            )

    for name, (wall_ratio, cpu_ratio) in ratios.items():
        print(f"core vs {name}: {wall_ratio:.1f}x faster (wall clock), {cpu_ratio:.1f}x (CPU time)")
    print("checks: " + ("; ".join(checks) if checks else "none"))
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1):
        print(
            f"note: load average {load:.1f} on {os.cpu_count()} CPUs during the run: the "
            "machine is shared, so wall-clock figures are pessimistic; CPU-time ratios "
            "are not affected by the load."
        )
    print("targets (issue #4):")
    print(_target("throughput >= 100 Mpx/s", MEGAPIXELS / best, TARGETS["mpx_per_s"]))
    print(_target("peak RSS well under 500 MB", TARGETS["rss_mb"] / rss, 1.0, rss, "MB"))
    if "scikit-learn" in ratios:
        print(_target(">= 3x scikit-learn", ratios["scikit-learn"][0], TARGETS["vs_sklearn"]))
    if "r.kappa" in ratios:
        print(_target(">= 10x r.kappa", ratios["r.kappa"][0], TARGETS["vs_r_kappa"]))
    return 0


def _aligned(classes: list[int], matrix: list[list[int]]) -> list[list[int]]:
    """``matrix`` over :data:`CLASSES` (the core lists only the classes it saw)."""
    index = {c: i for i, c in enumerate(classes)}
    return [
        [matrix[index[r]][index[c]] if r in index and c in index else 0 for c in CLASSES]
        for r in CLASSES
    ]


def _target(
    label: str, value: float, goal: float, shown: float | None = None, unit: str = "x"
) -> str:
    met = "met" if value >= goal else "NOT met"
    number = f"{shown:.0f} {unit}" if shown is not None else f"{value:.1f}"
    return f"  {label}: {number} ({met})"


if __name__ == "__main__":
    sys.exit(main())

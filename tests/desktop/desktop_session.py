# SPDX-License-Identifier: GPL-2.0-or-later
"""Drives a real QGIS desktop window (run by ``qgis --code``, see scripts/test_desktop.sh).

What a new user does after installing the plugin zip: the Processing Toolbox and its
search, the classify and agreement dialogs, a batch of two classify rows and of two
agreement rows through QGIS's own batch dialog, the graphical modeler with the
classify -> agreement chain and a run of it, the styled classified map with its legend
and the agreement HTML report. Screenshots go to ``$LANDCOVER_DESKTOP_SCREENSHOTS``;
every message of the QGIS message log is recorded; ``$LANDCOVER_DESKTOP_RESULT`` gets a
JSON summary (``ok`` false on any Python error, failed step or failed check), then QGIS
quits. Not a pytest module: it runs inside the QGIS application.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

import qgis.utils
from osgeo import gdal
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsProcessingModelAlgorithm,
    QgsProject,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication, QEventLoop, QSize, QTimer
from qgis.PyQt.QtWidgets import QDockWidget, QTabWidget, QTextBrowser
from qgis.utils import iface

ROOT = Path(os.environ["LANDCOVER_DESKTOP_ROOT"])
OUT = Path(os.environ["LANDCOVER_DESKTOP_OUT"])
RESULT = Path(os.environ["LANDCOVER_DESKTOP_RESULT"])
SCREENSHOTS = Path(os.environ["LANDCOVER_DESKTOP_SCREENSHOTS"])
WORK = OUT / "work"
MOSAIC = ROOT / "data" / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
LABELS = ROOT / "data" / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"
MODEL3 = ROOT / "tests" / "algorithms" / "data" / "classify_agreement.model3"
# What a user types in the Toolbox search box (issue 16, item 4).
SEARCHES = ("kappa", "confusion matrix", "accuracy", "onnx", "NAIP", "segmentation", "U-Net")
# The chain's reference remap: the labels' impervious classes 5, 6 are the model's 4.
REMAP = "5:4,6:4"
# Two 256 x 256 windows of the mosaic with tree canopy, low vegetation (and impervious).
BATCH_WINDOWS = ([0, 0, 256, 256], [768, 0, 256, 256])

state: dict[str, Any] = {
    "ok": False,
    "qgis_version": Qgis.QGIS_VERSION,
    "steps": {},
    "checks": {},
    "failures": [],
    "python_errors": [],
    "messages": [],
    "screenshots": [],
}


def on_message(message: str, tag: str, level: Qgis.MessageLevel) -> None:
    """Every message of the QGIS message log; Python errors, and Python warnings raised
    in the plugin's code (``warning:<file>:<line>: ...``), kept apart as failures.
    Warnings from QGIS's own Python (e.g. a deprecation under a newer Python) are not
    the plugin's: they are recorded only."""
    entry = {"tag": tag, "level": int(level), "message": message[:4000]}
    state["messages"].append(entry)
    first_line = message.split("\n", 1)[0]
    if tag == "Python error" or (tag == "Python warning" and "qgis_landcover" in first_line):
        state["python_errors"].append(entry)


QgsApplication.messageLog().messageReceived.connect(on_message)


def record_stack(*args: Any, **kwargs: Any) -> None:
    """QGIS's stack-trace dialog would wait for a click (the error is already in the
    message log, recorded above): nobody is there to click under Xvfb."""


qgis.utils.open_stack_dialog = record_stack


def pump(seconds: float = 0.3) -> None:
    """Let Qt paint and deliver signals for a while (the script runs in the GUI thread)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.02)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    """Pump events until ``condition()`` holds; a step fails after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        pump(0.2)


def screenshot(widget: Any, name: str) -> Path:
    """The widget as it is painted now, as PNG."""
    pump(0.5)
    path = SCREENSHOTS / f"{name}.png"
    if not widget.grab().save(str(path)):
        raise RuntimeError(f"could not save {path}")
    state["screenshots"].append(path.name)
    return path


def check(name: str, passed: bool, detail: Any = None) -> None:
    state["checks"][name] = {"passed": bool(passed), "detail": detail}
    if not passed:
        state["failures"].append(f"check {name}: {detail}")


def step(name: str):
    """Run one step; an exception fails it (and the run) but the next steps still run."""

    def decorate(function):
        def run() -> None:
            started = time.monotonic()
            try:
                function()
                state["steps"][name] = {"ok": True}
            except Exception:
                text = traceback.format_exc()
                state["steps"][name] = {"ok": False, "error": text}
                state["failures"].append(f"step {name}: {text.strip().splitlines()[-1]}")
            state["steps"][name]["seconds"] = round(time.monotonic() - started, 1)

        run.step_name = name
        return run

    return decorate


def crop(source: Path, target: Path, window: list[int]) -> str:
    gdal.Translate(str(target), str(source), srcWin=window)
    return str(target)


def landcover_algorithms_shown(tree: Any) -> list[str]:
    """Ids of the plugin's algorithms the Toolbox tree shows now (after its filter)."""
    model = tree.model()
    found = []

    def walk(parent: Any) -> None:
        for row in range(model.rowCount(parent)):
            index = model.index(row, 0, parent)
            algorithm = tree.algorithmForIndex(index)
            if algorithm is not None and algorithm.provider().id() == "landcover":
                found.append(algorithm.id())
            walk(index)

    walk(tree.rootIndex())
    return sorted(set(found))


# -- steps ---------------------------------------------------------------------------


@step("plugin_installed")
def plugin_installed() -> None:
    import qgis.utils

    profile = Path(QgsApplication.qgisSettingsDirPath()).resolve()
    module = qgis.utils.plugins.get("qgis_landcover")
    check("plugin_loaded", module is not None, sorted(qgis.utils.active_plugins))
    import qgis_landcover

    location = Path(qgis_landcover.__file__)
    check(
        "plugin_from_profile",
        profile in location.resolve().parents,
        f"{location} (profile {profile})",
    )
    provider = QgsApplication.processingRegistry().providerById("landcover")
    algorithms = sorted(a.id() for a in provider.algorithms()) if provider else []
    state["algorithms"] = algorithms
    check("provider_registered", len(algorithms) >= 4, algorithms)
    window = iface.mainWindow()
    window.resize(QSize(1600, 1000))
    window.showMaximized()


@step("toolbox")
def toolbox() -> None:
    import qgis.utils

    processing_plugin = qgis.utils.plugins["processing"]
    processing_plugin.toolboxAction.setChecked(True)
    box = processing_plugin.toolbox
    box.show()
    box.raise_()
    pump(0.5)
    searches = {}
    for text in SEARCHES:
        box.searchBox.setText(text)
        pump(0.2)
        box.algorithmTree.expandAll()
        searches[text] = landcover_algorithms_shown(box.algorithmTree)
        check(f"toolbox_search_{text}", bool(searches[text]), searches[text])
    state["toolbox_searches"] = searches
    box.searchBox.setText("land cover")
    pump(0.3)
    box.algorithmTree.expandAll()
    screenshot(iface.mainWindow(), "01_toolbox_search")
    box.searchBox.setText("")


@step("algorithm_dialogs")
def algorithm_dialogs() -> None:
    import processing

    for number, (algorithm, parameters) in enumerate(
        (
            ("landcover:classify", {"INPUT": str(MOSAIC)}),
            ("landcover:agreement", {"REFERENCE": str(LABELS), "REFERENCE_REMAP": REMAP}),
        ),
        start=2,
    ):
        dialog = processing.createAlgorithmDialog(algorithm, parameters)
        check(f"dialog_{algorithm}", dialog is not None, algorithm)
        dialog.resize(1100, 760)
        dialog.show()
        screenshot(dialog, f"{number:02d}_dialog_{algorithm.split(':')[1]}")
        dialog.close()
        dialog.deleteLater()
        pump(0.2)


def run_batch(algorithm_id: str, rows: list[dict[str, str]], name: str) -> Any:
    """Fill QGIS's batch dialog with ``rows`` (input values, and output paths where
    given; outputs not named stay empty as a user leaves them) and run it."""
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from processing.tools import dataobjects

    algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    dialog = BatchAlgorithmDialog(algorithm, parent=iface.mainWindow())
    dialog.resize(1400, 700)
    dialog.show()
    pump(0.5)
    panel = dialog.mainWidget()
    while panel.batchRowCount() < len(rows):
        panel.addRow()
    context = dataobjects.createContext()
    destinations = {d.name() for d in algorithm.destinationParameterDefinitions()}
    for row, values in enumerate(rows):
        for parameter, value in values.items():
            column = panel.parameter_to_column[parameter]
            if parameter in destinations:
                panel.tblParameters.cellWidget(row + 1, column).setValue(value)
            else:
                panel.wrappers[row][column].setParameterValue(value, context)
    panel.checkLoadLayersOnCompletion.setChecked(True)
    screenshot(dialog, f"{name}_filled")
    dialog.runAlgorithm()
    # QGIS 3.22 runs the rows before runAlgorithm returns; later releases run them as
    # tasks. Either way Cancel is enabled only while rows run.
    pump(1.0)
    wait_until(lambda: not dialog.cancelButton().isEnabled(), 240, f"{name}: batch run")
    screenshot(dialog, f"{name}_log")
    log = dialog.findChild(QTextBrowser, "txtLog")
    text = log.toPlainText() if log is not None else ""
    check(f"{name}_no_failed_row", "failed" not in text.lower(), text[-2000:])
    check(
        f"{name}_no_missing_layer",
        "not correctly generated" not in text,
        text[-2000:],
    )
    return dialog


@step("batch_classify")
def batch_classify() -> None:
    rows = []
    for number, window in enumerate(BATCH_WINDOWS, start=1):
        source = crop(MOSAIC, WORK / f"naip_{number}.tif", window)
        # OUTPUT_CONFIDENCE and OUTPUT_PROBABILITIES left empty: optional outputs.
        rows.append({"INPUT": source, "OUTPUT": str(WORK / f"batch_landcover_{number}.tif")})
    dialog = run_batch("landcover:classify", rows, "04_batch_classify")
    for number in (1, 2):
        path = WORK / f"batch_landcover_{number}.tif"
        check(f"batch_classify_output_{number}", path.exists(), str(path))
    dialog.close()
    dialog.deleteLater()


@step("batch_agreement")
def batch_agreement() -> None:
    rows = []
    for number, window in enumerate(BATCH_WINDOWS, start=1):
        reference = crop(LABELS, WORK / f"labels_{number}.tif", window)
        # The HTML report; the agreement raster in the first row only; the other
        # files left empty.
        row = {
            "CLASSIFIED": str(WORK / f"batch_landcover_{number}.tif"),
            "REFERENCE": reference,
            "REFERENCE_REMAP": REMAP,
            "OUTPUT_HTML": str(WORK / f"batch_agreement_{number}.html"),
        }
        if number == 1:
            row["OUTPUT_DISAGREEMENT"] = str(WORK / "batch_agreement_raster_1.tif")
        rows.append(row)
    dialog = run_batch("landcover:agreement", rows, "05_batch_agreement")
    for number in (1, 2):
        path = WORK / f"batch_agreement_{number}.html"
        check(f"batch_agreement_report_{number}", path.exists(), str(path))
    raster = WORK / "batch_agreement_raster_1.tif"
    check("batch_agreement_raster", raster.exists(), str(raster))
    dialog.close()
    dialog.deleteLater()


@step("modeler")
def modeler() -> None:
    import processing
    from processing.modeler.ModelerDialog import ModelerDialog
    from qgis.core import QgsProcessingFeedback

    chain = QgsProcessingModelAlgorithm()
    check("model_file_loads", chain.fromFile(str(MODEL3)), str(MODEL3))
    # The designer draws an invalid step in red (e.g. a mandatory parameter the file lacks).
    for child in chain.childAlgorithms():
        valid, issues = chain.validateChildAlgorithm(child)
        check(f"model_step_{child}_valid", valid, issues)
    designer = ModelerDialog.create(chain)
    designer.resize(1400, 900)
    designer.show()
    pump(0.5)
    designer.view().fitInView(designer.view().scene().itemsBoundingRect(), 1)
    screenshot(designer, "06_modeler_chain")
    designer.setDirty(False)
    designer.close()
    pump(0.2)

    # The whole 1024 x 512 mosaic: the map and report the README shows.
    imagery, labels = str(MOSAIC), str(LABELS)
    values = {}
    for definition in chain.parameterDefinitions():
        name = definition.name()
        if definition.isDestination():
            suffix = ".html" if "report" in name else ".json" if "statistic" in name else ".tif"
            values[name] = str(WORK / f"chain_{name.replace(':', '_')}{suffix}")
        elif "imagery" in name:
            values[name] = imagery
        elif "reference" in name and "remap" not in name:
            values[name] = labels
        elif "remap" in name:
            values[name] = REMAP
    state["chain_parameters"] = values
    results = processing.runAndLoadResults(chain, values, feedback=QgsProcessingFeedback())
    state["chain_results"] = {k: str(v) for k, v in (results or {}).items()}
    report = next((v for k, v in values.items() if "report" in k), None)
    check("chain_report_written", report is not None and Path(report).exists(), report)
    statistics = next((v for k, v in values.items() if "statistic" in k), None)
    if statistics and Path(statistics).exists():
        numbers = json.loads(Path(statistics).read_text())
        state["chain_overall_accuracy"] = numbers.get("overall_accuracy")
        check("chain_accuracy_plausible", 0.5 < numbers.get("overall_accuracy", 0) <= 1, numbers)
    state["chain_report"] = report


@step("styled_map")
def styled_map() -> None:
    project = QgsProject.instance()
    # The chain's land cover of the whole mosaic, loaded by the run (as a user gets it).
    layer = None
    for candidate in project.mapLayers().values():
        if isinstance(candidate, QgsRasterLayer) and "chain_classify" in candidate.source():
            layer = candidate
    check("chain_output_loaded", layer is not None, sorted(project.mapLayers()))
    if layer is None:  # load it as a user would, to still show it
        layer = QgsRasterLayer(str(WORK / "batch_landcover_1.tif"), "batch_landcover_1")
        project.addMapLayer(layer)
    renderer = layer.renderer()
    classes = [c.label for c in renderer.classes()] if hasattr(renderer, "classes") else []
    state["classified_legend"] = classes
    check("classified_layer_styled", renderer.type() == "paletted", renderer.type())
    check("classified_legend_short", 0 < len(classes) <= 8, classes)
    for other in project.mapLayers().values():
        if other.id() != layer.id():
            project.layerTreeRoot().findLayer(other.id()).setItemVisibilityChecked(False)
    for other in project.layerTreeRoot().findLayers():
        other.setExpanded(False)
    node = project.layerTreeRoot().findLayer(layer.id())
    node.setExpanded(True)
    node.setItemVisibilityChecked(True)
    iface.setActiveLayer(layer)
    legend_counts = {}
    for other in project.mapLayers().values():
        entries = getattr(other.renderer(), "classes", lambda: [])()
        legend_counts[other.name()] = len(entries)
    state["legend_entries_per_layer"] = legend_counts
    many = {name: count for name, count in legend_counts.items() if count > 20}
    check("no_layer_with_a_huge_legend", not many, many)
    window = iface.mainWindow()
    for dock in window.findChildren(QDockWidget):  # the map and the layers panel only
        if dock.objectName() != "Layers":
            dock.hide()
    canvas = iface.mapCanvas()
    canvas.setExtent(layer.extent())
    canvas.refresh()
    pump(0.5)
    canvas.waitWhileRendering()
    screenshot(iface.mainWindow(), "07_styled_map_with_legend")


@step("agreement_report")
def agreement_report() -> None:
    report = state.get("chain_report") or str(WORK / "batch_agreement_1.html")
    html = Path(report).read_text(encoding="utf-8")
    check("report_has_kappa", "kappa" in html.lower(), report)
    viewer = QTextBrowser()
    viewer.setWindowTitle(Path(report).name)
    viewer.setSearchPaths([str(Path(report).parent)])
    viewer.setHtml(html)
    viewer.resize(1000, 900)
    viewer.show()
    screenshot(viewer, "08_agreement_report")
    viewer.close()


@step("message_log")
def message_log() -> None:
    # Also what the log panel holds from before this script ran (plugin loading).
    dock = iface.mainWindow().findChild(QDockWidget, "MessageLog")
    tabs = dock.widget().findChild(QTabWidget) if dock is not None else None
    check("message_log_panel_found", tabs is not None, repr(dock))
    names = [tabs.tabText(i) for i in range(tabs.count())] if tabs is not None else []
    state["message_log_tabs"] = names
    check("no_python_error_tab", not any(n.startswith("Python error") for n in names), names)


STEPS = [
    plugin_installed,
    toolbox,
    algorithm_dialogs,
    batch_classify,
    batch_agreement,
    modeler,
    styled_map,
    agreement_report,
    message_log,
]


def finish() -> None:
    state["ok"] = not state["failures"] and not state["python_errors"]
    RESULT.write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")
    # Quit as the menu does, the project emptied first: QGIS 3.22 aborts when it tears
    # down layers and panels together at exit with layers still in the project.
    iface.setActiveLayer(None)
    QgsProject.instance().clear()
    QgsProject.instance().setDirty(False)
    pump(0.5)
    iface.actionExit().trigger()


def main() -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    try:
        for run in STEPS:
            print(f"desktop: {run.step_name}", flush=True)
            run()
    finally:
        finish()


# Let QGIS finish starting (the window shown, plugins loaded) before driving it.
QTimer.singleShot(3000, main)

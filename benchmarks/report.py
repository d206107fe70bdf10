"""``reports/benchmarks/``: Markdown + PNG charts from the suite's raw JSON, rerunnable alone.

    python -m benchmarks.report reports/benchmarks        # reads latency.json, accuracy.json, floor.json

A hand-written ``notes.md`` in the folder (the explanations of surprising cases) is appended.

Absolute times on a shared machine are noisy, so the report leads with ratios measured within
one run: every case against LiteRT float32 at 1 thread (same stage), int8 against the vector-unit
floor (:mod:`benchmarks.floor`), and end to end against inference alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REF = ("litert", "float32", 1)
PI_NOTE = """## Rerun on a Raspberry Pi or Jetson

Same command, edge install only (no TensorFlow / onnxruntime: those cases skip and say so):

```bash
python3 -m venv .venv && .venv/bin/pip install -e . -e ./edge_runtime pytest pytest-benchmark matplotlib   # matplotlib only for the charts
BR35H_DATA=/path/to/br35h .venv/bin/python -m benchmarks --artifacts models/ --threads 1,4
```

`--artifacts models/` times and scores the committed `br35h-mobilenetv2-{int8,fp16}.tflite`; the floor
is measured with `benchmarks/peak.c` on x86 with AVX-512 VNNI only, elsewhere it is the nominal table
in `benchmarks/floor.py` (Cortex-A76: 32 int8 MACs/cycle with SDOT) times the reported max clock.
"""


def _load(folder: Path, name: str) -> dict | None:
    p = folder / name
    return json.loads(p.read_text()) if p.is_file() else None


def cases(latency: dict) -> list[dict]:
    """One flat row per benchmark: ids, stats in ms, extra_info."""
    rows = []
    for b in latency["benchmarks"]:
        s, e = b["stats"], b["extra_info"]
        rows.append({"id": b["name"], "mean_ms": 1e3 * s["mean"], "std_ms": 1e3 * s["stddev"], "rounds": s["rounds"], **e})
    return rows


def _find(rows: list[dict], runtime: str, precision: str, threads, stage: str) -> dict | None:
    return next((r for r in rows if r.get("runtime") == runtime and r.get("precision") == precision
                 and r.get("threads") == threads and r["stage"] == stage), None)


def ratios(rows: list[dict]) -> None:
    """Add ``ratio`` (vs LiteRT float32 1 thread, same stage) and ``e2e_over_inference`` in place."""
    for r in rows:
        ref = _find(rows, *REF, "inference" if r["stage"] == "preprocess" else r["stage"])
        r["ratio"] = r["median_ms"] / ref["median_ms"] if ref else None
        if r["stage"] == "end_to_end":
            inf = _find(rows, r["runtime"], r["precision"], r["threads"], "inference")
            r["e2e_over_inference"] = r["median_ms"] / inf["median_ms"] if inf else None


def floor_ms(floor: dict | None) -> tuple[float, float, str] | None:
    """Strictest (lowest) int8 floor at 1 core and all cores, and which peak gave it."""
    if not floor or not floor["peaks"]:
        return None
    kind, p = min(floor["peaks"].items(), key=lambda kv: kv[1]["int8_floor_ms_1core"])
    return p["int8_floor_ms_1core"], p["int8_floor_ms_all_cores"], kind


def targets(rows: list[dict], floor: dict | None) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each ratio target this run can judge: int8 <= 0.5x float32 and
    faster than ONNX Runtime float32, float16 no faster than float32 on x86, end to end <= 1.3x
    inference, int8 within 3x of the vector-unit floor."""
    out = []
    f32, i8 = _find(rows, *REF, "inference"), _find(rows, "litert", "int8", 1, "inference")
    if f32 and i8:
        r = i8["median_ms"] / f32["median_ms"]
        out.append(("LiteRT int8 <= 0.5x float32, 1 thread", f"{i8['median_ms']:.2f} / {f32['median_ms']:.2f} ms = {r:.2f}x", r <= 0.5))
    f16 = _find(rows, "litert", "float16", 1, "inference")
    if f32 and f16:
        r = f16["median_ms"] / f32["median_ms"]
        out.append(("(expected) float16 no faster than float32 on x86", f"{r:.2f}x", None))
    for t in sorted({r["threads"] for r in rows if r.get("runtime") == "litert"}):
        a, b = _find(rows, "litert", "int8", t, "inference"), _find(rows, "onnxruntime", "float32", t, "inference")
        if a and b:
            out.append((f"LiteRT int8 faster than ONNX Runtime float32, {t} thread(s)",
                        f"{a['median_ms']:.2f} vs {b['median_ms']:.2f} ms", a["median_ms"] < b["median_ms"]))
    for r in rows:
        if r.get("e2e_over_inference") is not None and r.get("precision") == "int8" and r.get("runtime") == "litert":
            out.append((f"end to end <= 1.3x inference ({r['id']})", f"{r['e2e_over_inference']:.2f}x", r["e2e_over_inference"] <= 1.3))
    fl = floor_ms(floor)
    if fl and i8:
        r = i8["median_ms"] / fl[0]
        out.append(("LiteRT int8 within 3x of the vector-unit floor, 1 thread",
                    f"{i8['median_ms']:.2f} / {fl[0]:.2f} ms = {r:.2f}x ({fl[2]} peak)", r <= 3))
    return out


def _headline_rows(accuracy: dict | None, rows: list[dict]) -> list[dict]:
    """One row per artifact: the accuracy records, or (latency-only run) the timed artifacts."""
    if accuracy:
        return accuracy["records"]
    return [{"artifact": r["artifact"], "runtime": r["runtime"], "precision": r["precision"], "size_kib": r["size_kib"],
             "splits": {}} for r in rows if r["stage"] == "inference" and r.get("threads") in (1, None)]


def _f(v, fmt=".2f") -> str:
    return "-" if v is None else format(v, fmt)


def markdown(latency: dict | None, accuracy: dict | None, floor: dict | None, command: str) -> str:
    lines = ["# Benchmarks: latency and accuracy of every artifact", "", f"Command: `{command}`", ""]
    rows = cases(latency) if latency else []
    if latency:
        mi = latency["machine_info"]
        b = mi.get("br35h", {})
        isa = (f" ({b.get('isa_level')}: {' '.join(b['vector_features'])})" if "vector_features" in b
               else " (vector features not recorded)")
        lines += [f"Machine: **{b.get('cpu', mi.get('cpu', {}).get('brand_raw'))}**{isa}, {b.get('cores')} cores, {b.get('os')}, "
                  f"Python {b.get('python')}; run {latency['datetime']}. Load average at start: "
                  f"{', '.join(f'{v:.2f}' for v in b.get('loadavg_start', []))} (1/5/15 min).  ",
                  "Versions: " + ", ".join(f"{k} {v}" for k, v in b.get("versions", {}).items()), ""]
        ratios(rows)
    if accuracy or rows:
        lines += ["## Headline", "", "| artifact | size KiB | paper test acc % [95 % CI] | inference 1 thread ms | ratio to float32 | end to end 1 thread ms |",
                  "|---|---:|---|---:|---:|---:|"]
        for rec in _headline_rows(accuracy, rows):
            t = None if rec["runtime"] == "keras" else 1
            inf, e2e = _find(rows, rec["runtime"], rec["precision"], t, "inference"), _find(rows, rec["runtime"], rec["precision"], t, "end_to_end")
            s = rec["splits"].get("paper_test")
            acc = f"{s['accuracy']:.2f} [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]" if s else "-"
            lines.append(f"| {rec['artifact']} ({rec['runtime']}) | {rec['size_kib']:.0f} | {acc} | {_f(inf and inf['median_ms'])} | "
                         f"{_f(inf and inf['ratio'])} | {_f(e2e and e2e['median_ms'])} |")
        lines.append("")
    if rows:
        lines += ["## Targets (ratios within this run)", "", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {t} | {m} | {'-' if ok is None else 'yes' if ok else '**no**'} |" for t, m, ok in targets(rows, floor)]
        lines += ["", "## Every case", "",
                  "Milliseconds per image (one image per round, cycling through the same test images). Ratio: median / LiteRT float32 "
                  "1 thread, same stage (preprocess: vs its inference). Peak RSS: a fresh process importing the runtime, loading the "
                  "model and classifying one image (`benchmarks/memory.py`); 'imports' is its RSS before the model was loaded.", "",
                  "| case | rounds | mean | std | median | p5 | p95 | img/s | ratio | e2e / inference | peak RSS MiB | imports MiB |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['id']} | {r['rounds']} | {r['mean_ms']:.2f} | {r['std_ms']:.2f} | {_f(r.get('median_ms'))} | "
                         f"{_f(r.get('p5_ms'))} | {_f(r.get('p95_ms'))} | {_f(r.get('throughput_per_s'), '.1f')} | {_f(r.get('ratio'))} | "
                         f"{_f(r.get('e2e_over_inference'))} | {r['peak_rss_mib']:.0f} | {r['rss_after_imports_mib']:.0f} |")
        pre = next((r for r in rows if r["stage"] == "preprocess"), None)
        e2e = _find(rows, "litert", "int8", 1, "end_to_end")
        inf = _find(rows, "litert", "int8", 1, "inference")
        if e2e and inf and pre:
            rest = e2e["median_ms"] - inf["median_ms"]
            lines += ["", f"Preprocessing share of end to end (LiteRT int8, 1 thread, medians): of {e2e['median_ms']:.2f} ms, "
                      f"inference {inf['median_ms']:.2f} ms, everything else {rest:.2f} ms "
                      f"({100 * rest / e2e['median_ms']:.0f} %) = numpy crop + resize {pre['median_ms']:.2f} ms "
                      f"+ JPEG decode (by difference) {rest - pre['median_ms']:.2f} ms."]
        lines.append("")
    if floor:
        m = floor["macs"]
        lines += ["## Vector-unit floor", "", f"MACs per image, counted from `{Path(floor['model']).name}`'s graph: "
                  f"conv {m['CONV_2D'] / 1e6:.1f} M + depthwise {m['DEPTHWISE_CONV_2D'] / 1e6:.1f} M + fully connected "
                  f"{m['FULLY_CONNECTED'] / 1e6:.1f} M = **{m['total'] / 1e6:.1f} M**. Reported clock {floor['cpu_mhz_reported']} MHz, "
                  f"{floor['cores']} cores; {floor.get('isa_level', 'vector level not recorded')}.", "", "| peak | int8 GMAC/s/core | fp32 GFMA/s/core | int8 floor 1 core | all cores | fp32 floor 1 core | source |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for kind, p in floor["peaks"].items():
            lines.append(f"| {kind} | {p['int8_gmacs']:.1f} | {p['fp32_gmacs']:.1f} | {m['total'] / 1e6:.1f} M / {p['int8_gmacs']:.1f} G = "
                         f"{p['int8_floor_ms_1core']:.2f} ms | {p['int8_floor_ms_all_cores']:.2f} ms | {p['fp32_floor_ms_1core']:.2f} ms | {p['source']} |")
        lines += ["", "The floor assumes every MAC issues on the vector units at peak, nothing else costs time; "
                  "the lower (stricter) floor is the one the target uses.", ""]
    if accuracy:
        lines += ["## Accuracy", "", f"Asserted: paper-protocol test accuracy >= {accuracy['expected_accuracy']} % - {accuracy['tolerance']} points, "
                  "and within the tolerance of the same runtime's float32 file. Device path: Pillow decode, numpy crop, the runtime. "
                  "The grouped split is reported only: `grouped unseen` = its test images whose whole near-duplicate group is "
                  "outside the paper split's train/val, the only ones this paper-split model has not effectively seen. "
                  "The grouped-trained model: `reports/train/cpu-grouped/report.md`.", "",
                  "| artifact | KiB | paper test % [CI] | bar met | vs float32 | agreement % | grouped test % [CI] | grouped unseen % [CI] (n) |",
                  "|---|---:|---|---|---:|---:|---|---|"]
        for rec in accuracy["records"]:
            sp = rec["splits"]

            def cell(k):
                s = sp.get(k)
                return f"{s['accuracy']:.2f} [{s['ci95'][0]:.1f}, {s['ci95'][1]:.1f}]" + (f" ({s['n']})" if k.endswith("unseen") else "") if s else "-"
            ref = rec.get("float32_reference")
            d = f"{sp['paper_test']['accuracy'] - ref['accuracy']:+.2f}" if ref else "-"
            met = sp["paper_test"]["accuracy"] >= accuracy["expected_accuracy"] - accuracy["tolerance"] and (
                ref is None or abs(sp["paper_test"]["accuracy"] - ref["accuracy"]) <= accuracy["tolerance"])
            lines.append(f"| {rec['artifact']} | {rec['size_kib']:.0f} | {cell('paper_test')} | {'yes' if met else '**no**'} | {d} | "
                         f"{_f(ref and ref['agreement'])} | "
                         f"{cell('grouped_test')} | {cell('grouped_test_unseen')} |")
        lines.append("")
    lines += ["Charts: `latency.png`, `accuracy_vs_size.png`. Raw: `latency.json` (pytest-benchmark, machine info), "
              "`accuracy.json`, `floor.json`.", "", PI_NOTE]
    return "\n".join(lines)


def charts(folder: Path, latency: dict | None, accuracy: dict | None) -> list[Path]:
    """latency.png (median, p5-p95 bars, by runtime/precision and threads) and accuracy_vs_size.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if latency:
        rows = [r for r in cases(latency) if r["stage"] != "preprocess" and "median_ms" in r]
        labels = list(dict.fromkeys(f"{r['runtime']}\n{r['precision']}" for r in rows))
        threads = sorted({r["threads"] or 0 for r in rows})
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
        for ax, stage in zip(axes, ("inference", "end_to_end")):
            w = 0.8 / len(threads)
            for j, t in enumerate(threads):
                sel = [(labels.index(f"{r['runtime']}\n{r['precision']}"), r) for r in rows if r["stage"] == stage and (r["threads"] or 0) == t]
                x = [i + j * w for i, _ in sel]
                med = [r["median_ms"] for _, r in sel]
                err = [[r["median_ms"] - r["p5_ms"] for _, r in sel], [r["p95_ms"] - r["median_ms"] for _, r in sel]]
                ax.bar(x, med, w, yerr=err, capsize=2, label="default threads" if t == 0 else f"{t} thread(s)")
            ax.set_xticks([i + 0.4 - w / 2 for i in range(len(labels))], labels, fontsize=8)
            ax.set_title(stage.replace("_", " "))
            ax.set_yscale("log")
            ax.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel("ms per image (median, p5-p95)")
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(folder / "latency.png", dpi=110)
        plt.close(fig)
        written.append(folder / "latency.png")
    if accuracy:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for rec in accuracy["records"]:
            s = rec["splits"]["paper_test"]
            ax.errorbar(rec["size_kib"] / 1024, s["accuracy"], yerr=[[s["accuracy"] - s["ci95"][0]], [s["ci95"][1] - s["accuracy"]]],
                        fmt="o", capsize=3)
            ax.annotate(rec["artifact"], (rec["size_kib"] / 1024, s["accuracy"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.axhline(accuracy["expected_accuracy"], ls="--", c="k", lw=0.8, label="paper 99.33 %")
        ax.axhline(accuracy["expected_accuracy"] - accuracy["tolerance"], ls=":", c="r", lw=0.8, label="- tolerance")
        ax.set_xlabel("file size (MiB)")
        ax.set_ylabel("paper test accuracy % (95 % CI)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(folder / "accuracy_vs_size.png", dpi=110)
        plt.close(fig)
        written.append(folder / "accuracy_vs_size.png")
    return written


def write(folder: Path, command: str) -> Path:
    """README.md + charts in ``folder`` from the JSON there; returns the Markdown path."""
    latency, accuracy, floor = (_load(folder, n) for n in ("latency.json", "accuracy.json", "floor.json"))
    if latency is None and accuracy is None:
        raise FileNotFoundError(f"{folder}: neither latency.json nor accuracy.json; run python -m benchmarks first")
    md = folder / "README.md"
    text = markdown(latency, accuracy, floor, command)
    notes = folder / "notes.md"  # hand-written findings that explain surprising cases; kept across reruns
    md.write_text(text + ("\n" + notes.read_text() if notes.is_file() else ""))
    charts(folder, latency, accuracy)
    return md


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--command", default="python -m benchmarks", help="the command to print as how the data was made")
    args = ap.parse_args(argv)
    print(write(args.folder, args.command))


if __name__ == "__main__":
    main()

"""examples/agent: the script builds its image, runs five LLM-style tasks and prints JSON."""
from __future__ import annotations

import csv
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

AGENT = Path(__file__).resolve().parent.parent / "examples" / "agent"


def run_agent(image, out, cache_dir):
    r = subprocess.run([sys.executable, str(AGENT / "agent.py"), "--image", str(image), "--out", str(out)],
                       capture_output=True, text=True, env={**os.environ, "BOXER_CACHE_DIR": str(cache_dir)},
                       timeout=600)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()], r.stderr


def test_agent_example_end_to_end(tmp_path, cache_dir):
    image, out = tmp_path / "agent.wasm", tmp_path / "agent-output"
    lines, stderr = run_agent(image, out, cache_dir)
    assert "building" in stderr and image.is_file()
    results = {line["task"]: line["result"] for line in lines}
    assert list(results) == ["csv-summary", "bar-chart", "plotly-chart", "failing-program", "runaway-loop"]

    # the CSV summary matches the same statistics computed here
    with open(AGENT / "data" / "sales.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    revenue = [float(r["revenue"]) for r in rows]
    summary = results["csv-summary"]
    assert summary["exit_code"] == 0, summary["stderr"]
    north = sum(float(r["revenue"]) for r in rows if r["region"] == "North")
    assert re.search(rf"^North\s+2\s+{north:.2f}\s+{north / 2:.2f}$", summary["stdout"], re.M)
    assert (f"overall mean {statistics.mean(revenue):.2f}, median {statistics.median(revenue):.2f}, "
            f"stdev {statistics.stdev(revenue):.2f}") in summary["stdout"]

    # the chart comes back in the result and is saved on the host: one bar per region
    chart = results["bar-chart"]
    assert chart["exit_code"] == 0, chart["stderr"]
    [file] = chart["files"]
    assert file["path"] == "/out/chart.html" and file["encoding"] == "utf-8"
    saved = (out / "bar-chart" / "chart.html").read_text()
    assert saved == file["content"]
    assert saved.startswith("<!DOCTYPE html>") and "<svg" in saved
    regions = sorted({r["region"] for r in rows})
    assert re.findall(r"<title>(\w+): ", saved) == regions
    assert saved.count('class="bar"') == len(regions)

    # plotly, installed by the Dockerfile's RUN pip, draws the same bars
    plotly = results["plotly-chart"]
    assert plotly["exit_code"] == 0, plotly["stderr"]
    assert not plotly["files_truncated"]
    page = (out / "plotly-chart" / "plotly.html").read_text()
    assert "Plotly.newPlot" in page and "Revenue by region" in page
    assert all(f'"{r}"' in page for r in regions)

    failing = results["failing-program"]
    assert failing["exit_code"] == 1 and "KeyError: 'revenue'" in failing["stderr"]
    runaway = results["runaway-loop"]
    assert runaway["exit_code"] == 124 and runaway["timed_out"] is True

    # a second run reuses the image instead of building it again
    built = image.stat().st_mtime_ns
    lines, stderr = run_agent(image, out, cache_dir)
    assert "building" not in stderr and image.stat().st_mtime_ns == built
    assert [line["result"]["exit_code"] for line in lines] == [0, 0, 0, 1, 124]

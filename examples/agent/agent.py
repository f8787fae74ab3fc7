"""Plays an AI agent: sends LLM-style Python to the boxer sandbox and prints the JSON results.

    python examples/agent/agent.py [--image agent.wasm] [--out agent-output]

Builds the image from the Dockerfile beside this script when it is missing or older than
the Dockerfile, then runs five tasks through one warm Session: a CSV summary, an HTML bar
chart by hand (written to /out/chart.html, saved as OUT/bar-chart/chart.html), the same chart
with plotly (OUT/plotly-chart/plotly.html), a failing program and a runaway loop. Each result is printed as one JSON line: {"task": ..., "result": {...}}.
"""
from __future__ import annotations

import argparse
import json
import posixpath
import sys
from pathlib import Path

import boxer_py

HERE = Path(__file__).resolve().parent

# What an LLM might write when asked to "summarise sales.csv by region".
CSV_SUMMARY = """
import csv, statistics
from collections import defaultdict

revenue = defaultdict(list)
with open('/data/sales.csv', newline='') as f:
    for row in csv.DictReader(f):
        revenue[row['region']].append(float(row['revenue']))

print(f"{'region':<8}{'months':>7}{'total':>10}{'mean':>10}")
for region, values in sorted(revenue.items()):
    print(f"{region:<8}{len(values):>7}{sum(values):>10.2f}{statistics.mean(values):>10.2f}")
everything = [v for values in revenue.values() for v in values]
print(f"overall mean {statistics.mean(everything):.2f}, median {statistics.median(everything):.2f}, "
      f"stdev {statistics.stdev(everything):.2f}")
"""

# "Draw a bar chart of revenue by region as an HTML page", with no library: hand-written SVG.
BAR_CHART = """
import csv, html
from collections import defaultdict

totals = defaultdict(float)
with open('/data/sales.csv', newline='') as f:
    for row in csv.DictReader(f):
        totals[row['region']] += float(row['revenue'])

width, height, bar = 480, 300, 80
top = max(totals.values())
bars = []
for i, (region, total) in enumerate(sorted(totals.items())):
    h = total / top * (height - 60)
    x = 30 + i * (bar + 30)
    bars.append(f'<rect class="bar" x="{x}" y="{height - 30 - h:.1f}" width="{bar}" height="{h:.1f}" fill="#4c78a8">'
                f'<title>{html.escape(region)}: {total:.2f}</title></rect>'
                f'<text x="{x + bar / 2}" y="{height - 10}" text-anchor="middle">{html.escape(region)}</text>')
page = f'''<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Revenue by region</title></head>
<body><h1>Revenue by region</h1>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{''.join(bars)}</svg>
</body></html>
'''
with open('/out/chart.html', 'w') as f:
    f.write(page)
print(f"wrote /out/chart.html with {len(bars)} bars")
"""

# The same chart the way an LLM usually writes it: plotly (installed in the image by RUN pip),
# with plotly.js embedded so the page needs no network.
PLOTLY_CHART = """
import csv
from collections import defaultdict
import plotly.graph_objects as go

totals = defaultdict(float)
with open('/data/sales.csv', newline='') as f:
    for row in csv.DictReader(f):
        totals[row['region']] += float(row['revenue'])
regions = sorted(totals)
fig = go.Figure(go.Bar(x=regions, y=[totals[r] for r in regions]))
fig.update_layout(title='Revenue by region')
fig.write_html('/out/plotly.html', include_plotlyjs=True, full_html=True)
print(f"wrote /out/plotly.html with {len(regions)} bars")
"""

# A bug the agent will have to read the traceback of.
FAILING = """
rows = [{'region': 'North', 'units': 0}]
print(rows[0]['revenue'] / rows[0]['units'])
"""

# A runaway loop: the sandbox's timeout ends it.
RUNAWAY = """
n = 0
while True:
    n += 1
"""


def ensure_image(image: Path) -> Path:
    """Build the sandbox image unless an up-to-date one is already there."""
    dockerfile = HERE / "Dockerfile"
    if not image.exists() or image.stat().st_mtime < dockerfile.stat().st_mtime:
        print(f"building {image} from {dockerfile}", file=sys.stderr)
        boxer_py.build(HERE, image, tag="agent-sandbox")
    return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=HERE / "agent.wasm")
    parser.add_argument("--out", type=Path, default=Path("agent-output"))
    args = parser.parse_args()

    box = boxer_py.Session(ensure_image(args.image))
    data = f"{HERE / 'data'}:/data:ro"
    tasks = [
        ("csv-summary", CSV_SUMMARY, {}),
        ("bar-chart", BAR_CHART, {}),
        ("plotly-chart", PLOTLY_CHART, {"timeout": 60, "max_output": "16m"}),
        ("failing-program", FAILING, {}),
        ("runaway-loop", RUNAWAY, {"timeout": 2}),
    ]
    for name, code, limits in tasks:
        result = box.run_python(code, mounts=[data], memory="512m", disk="64m",
                                **{"timeout": 10, "max_output": "256k", **limits})
        for path, content in result.files.items():  # what the agent hands back to its user
            target = args.out / name / posixpath.relpath(path, "/out")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        print(json.dumps({"task": name, "result": result.to_json()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

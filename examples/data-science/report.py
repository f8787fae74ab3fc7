"""The kind of code an agent writes: load a CSV, summarise it, save a chart to /out."""
import os

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

sales = pd.read_csv("sales.csv", parse_dates=["date"])  # relative: WORKDIR is /app
sales["revenue"] = sales["units"] * sales["price"]
summary = (sales.groupby("region")
           .agg(orders=("units", "size"), units=("units", "sum"), revenue=("revenue", "sum"))
           .sort_values("revenue", ascending=False))
print(summary.to_string())
print(f"total revenue: {sales['revenue'].sum():.2f}")

os.makedirs("/out", exist_ok=True)
ax = summary["revenue"].plot.bar(color="#4c72b0")
ax.set_title(os.environ.get("CHART_TITLE", "Revenue"))
ax.set_ylabel("revenue")
plt.tight_layout()
plt.savefig("/out/chart.png", dpi=80)
print(f"chart: /out/chart.png ({matplotlib.get_backend()})")

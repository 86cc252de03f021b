"""A sweep's results: one tidy row per point, written as CSV and JSON, summarised, plotted.

Rows are sorted by the grid's order (task, then time, then compensation), never by completion,
so the table is the same whatever the number of workers. The columns of :data:`PLACEMENT` say
where and how fast a point ran; every other column is a function of the point and the build.
"""

import csv
import json
import math
from pathlib import Path

import numpy as np

__all__ = ["PLACEMENT", "SweepResult", "read_previous", "stem"]

#: columns that depend on where and when a point ran, not on the point
PLACEMENT = ("wall_s", "task_s", "task_cpu_s", "worker", "backend")


def stem(output):
    """``results``, ``results.csv`` or ``results.json`` -> ``Path("results")``."""
    path = Path(output)
    return path.with_suffix("") if path.suffix in (".csv", ".json") else path


def read_previous(output):
    """Rows of an earlier run written to ``output`` (its JSON), or ``[]``."""
    path = stem(output).with_suffix(".json")
    if not path.exists():
        return []
    try:
        saved = json.loads(path.read_text())
        rows = saved["rows"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{str(path)!r} is not the JSON of a memxbar sweep: move it away or use "
                         f"--no-resume to overwrite it") from None
    return rows


class SweepResult:
    """The rows of a sweep (``rows``: list of dicts) and what it was (``meta``: grid, hash, ...)."""

    def __init__(self, rows, meta):
        self.rows = rows
        self.meta = meta

    @property
    def columns(self):
        names = {}
        for row in self.rows:
            names.update(dict.fromkeys(row))
        return list(names)

    @property
    def failed(self):
        """Rows whose point failed, with its ``error``."""
        return [row for row in self.rows if row.get("error")]

    @property
    def metrics(self):
        return list(self.meta.get("metrics", []))

    def table(self):
        """The rows without the :data:`PLACEMENT` columns: identical across runs of the same sweep."""
        return [{k: v for k, v in row.items() if k not in PLACEMENT} for row in self.rows]

    # -- files ---------------------------------------------------------------------------------------

    def to_csv(self, path):
        columns = self.columns
        with Path(path).open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=columns, restval="")
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: "" if v is None else v for k, v in row.items()})

    def to_json(self, path):
        Path(path).write_text(json.dumps({**self.meta, "rows": self.rows}, indent=1, allow_nan=False,
                                         default=_plain))

    def write(self, output):
        """``output.csv`` and ``output.json`` (the JSON is what a rerun resumes from)."""
        base = stem(output)
        if base.parent != Path():
            base.parent.mkdir(parents=True, exist_ok=True)
        self.to_csv(base.with_suffix(".csv"))
        self.to_json(base.with_suffix(".json"))
        return base.with_suffix(".csv"), base.with_suffix(".json")

    # -- summaries -------------------------------------------------------------------------------------

    def groups(self, metric=None):
        """``{coordinates without seed: [metric per seed]}`` in the grid's order (failed points left out)."""
        metric = metric or self.metrics[0]
        names = [*self.meta["params"], "time_s", "compensation"]
        out = {}
        for row in self.rows:
            if row.get("error") or row.get(metric) is None:
                continue
            out.setdefault(tuple(row[name] for name in names), []).append(row[metric])
        return names, out

    def summary(self):
        """A text table: the first metric's mean +- std over seeds at every other coordinate."""
        if not self.metrics:
            return "no point completed"
        metric = self.metrics[0]
        names, groups = self.groups(metric)
        header = [*names, f"{metric} mean", "std", "seeds"]
        lines = [[*map(_text, key), f"{np.mean(values):.4f}", f"{np.std(values):.4f}", str(len(values))]
                 for key, values in groups.items()]
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]
        text = ["  ".join(str(cell).rjust(width) for cell, width in zip(row, widths, strict=True))
                for row in [header, *lines]]
        failed = self.failed
        if failed:
            text.append(f"{len(failed)} point(s) failed, first: {failed[0]['error']}")
        return "\n".join(text)

    def plot(self, path, axis=None, metric=None):
        """Mean and std over seeds against ``axis`` (default the first swept parameter, else time)."""
        try:
            import matplotlib
        except ImportError:
            raise ImportError("the plot needs matplotlib: pip install 'memxbar[demo]' (or --plot -)") \
                from None
        matplotlib.use("Agg")
        from matplotlib import pyplot

        metric = metric or (self.metrics[0] if self.metrics else None)
        if metric is None:
            raise ValueError("nothing to plot: no point completed")
        params = self.meta["params"]
        swept = [name for name, values in params.items() if len(values) > 1]
        axis = axis or (swept[0] if swept else "time_s")
        if axis not in (*params, "time_s"):
            raise ValueError(f"cannot plot against {axis!r}: use time_s or a parameter "
                             f"({', '.join(params) or 'none in this grid'})")
        names, groups = self.groups(metric)
        panels = [None] if axis == "time_s" else self.meta["grid"]["times"]
        others = [name for name in swept if name != axis]
        # colour: the other swept parameters; line style: the compensation
        colours, styles = {}, {name: style for name, style in zip(
            self.meta["grid"]["compensation"], ("-", "--", ":", "-."), strict=False)}
        size = (max(3.2 * len(panels) + 0.8, 8.0), 3.9)
        figure, grid = pyplot.subplots(1, len(panels), figsize=size, dpi=90, sharey=True, squeeze=False)
        for panel, axes in zip(panels, grid[0], strict=True):
            lines = {}
            for key, values in groups.items():
                coords = dict(zip(names, key, strict=True))
                if panel is not None and coords["time_s"] != panel:
                    continue
                colour = ", ".join(f"{name}={_text(coords[name])}" for name in others)
                lines.setdefault((colour, coords["compensation"]), []).append(
                    (coords[axis], np.mean(values), np.std(values)))
            for (colour, compensation), points in lines.items():
                x, mean, std = (np.array(v, dtype=float) for v in zip(*points, strict=True))
                colours.setdefault(colour, f"C{len(colours) % 10}")
                label = ", ".join(part for part in (colour, f"comp. {compensation}") if part)
                axes.errorbar(x, mean, yerr=std, marker="o", markersize=4, capsize=3, color=colours[colour],
                              linestyle=styles.get(compensation, "-"), label=label)
            reference = self.meta.get("float", {}).get(metric)
            if reference is not None:
                axes.axhline(reference, color="black", linestyle="--", linewidth=1, label="float")
            if axis == "time_s":
                axes.set_xscale("log")
            axes.set_xlabel("time since programming (s)" if axis == "time_s" else axis)
            axes.set_title("" if panel is None else f"t = {_duration(panel)}", fontsize="medium")
            axes.grid(alpha=0.3)
        grid[0][0].set_ylabel(metric)
        handles, labels = grid[0][-1].get_legend_handles_labels()
        figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize="x-small")
        seeds = len(self.meta["grid"]["seeds"])
        figure.suptitle(f"{self.meta['network']} on {self.meta['device_model']}: mean +- std over "
                        f"{seeds} seeds", fontsize="medium")
        rows_of_legend = -(-len(labels) // 4)
        figure.tight_layout(rect=(0, 0.05 + 0.05 * rows_of_legend, 1, 1))
        figure.savefig(path)
        pyplot.close(figure)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {value!r}")


def _text(value):
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _duration(seconds):
    for unit, size in (("year", 365 * 86400.0), ("day", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size and math.isclose(seconds / size, round(seconds / size)):
            return f"{round(seconds / size)} {unit}"
    return f"{seconds:g} s"

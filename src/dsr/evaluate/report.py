"""Reports over one or more run directories: Markdown plus one self-contained HTML file.

Read from the top, the report answers a researcher's first questions before the details:

1. **Headline** — each run's accuracy in one line ("oracle 100.0% · text-prior (text-only control)
   76.2% · chance 25.0%"), then the warnings that change how to read it: a **red flag** when a blind
   control (text-only, answer-letter prior, always-X, random, a ``--arm blind`` run) scores more than
   10 points above chance, overall or on a type; a **CI warning** when the runs cover fewer than 10
   videos (the cluster bootstrap has too few clusters).
2. A Table-4-style table (per type in Table 4's order, micro "Avg" and macro, 95% cluster-bootstrap
   CIs, n per type, the analytic chance line) and a per-type chart; the **legend of type names** from
   the one table of question-type facts (:mod:`dsr.qa.question_types`).
3. Blind controls against chance, and paired control deltas (main arm minus each control arm).
4. Optional: ground-truth vs extracted-record label agreement per type (:mod:`dsr.evaluate.agreement`).
5. Failures by reason, letter bias, invalid rates and parse tiers, token cost, the predictions file's
   own reading, and the items most runs got wrong — each with thumbnails over its interval, time
   labels, the named objects' boxes and the gold option marked (:mod:`dsr.evaluate.thumbnails`).

Charts are matplotlib PNGs, inlined as base64 in the HTML and written beside the Markdown.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsr.atomic import atomic_write_bytes, atomic_write_text
from dsr.evaluate.run import load_run, summarize_rows
from dsr.evaluate.stats import (
    DEFAULT_RESAMPLES,
    Estimate,
    Paired,
    Summary,
    chance_level,
    ordered_types,
    paired,
)
from dsr.evaluate.store import RunError
from dsr.qa.question_types import NON_TEMPLATE, NUMERIC_TYPES, TYPE_LABELS, TYPES

# A blind control this many points above chance means the questions leak their answer without the video.
RED_FLAG_POINTS = 10.0
# Fewer videos than this and the cluster bootstrap's intervals are unreliable (too few clusters).
MIN_VIDEOS_FOR_CI = 10
# What each blind control is (the model names of dsr.evaluate.models' baselines).
BLIND_CONTROLS = {"text-prior": "text-only control: question and options, no video",
                  "answer-prior": "answer-letter prior fitted on this set, no video and no text",
                  "random": "random letter", "always": "always the same letter"}


@dataclass(frozen=True)
class LoadedRun:
    label: str
    path: Path
    manifest: dict[str, Any]
    rows: list[dict[str, Any]]  # multiple-choice rows (every section but "Numeric and open answers")
    summary: Summary | None
    free_rows: list[dict[str, Any]] = field(default_factory=list)  # numeric and open rows (issue 16)

    @property
    def scored(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if not r.get("error")]

    @property
    def model_name(self) -> str:
        model = self.manifest.get("model", {})
        return str(model.get("name") or model.get("model") or self.path.name)

    @property
    def blind_control(self) -> str | None:
        """What kind of blind control this run is (it never sees the video), or None."""
        model = self.manifest.get("model", {})
        if self.manifest.get("arm") == "blind":
            return "blind arm: the model without the video"
        if model.get("backend") == "baseline":
            name = self.model_name
            return BLIND_CONTROLS.get(name) or (BLIND_CONTROLS["always"] if name.startswith("always-") else None)
        return None

    @property
    def is_oracle(self) -> bool:
        return self.manifest.get("model", {}).get("backend") == "baseline" and self.model_name == "oracle"


def _label(manifest: dict[str, Any], path: Path) -> str:
    model = manifest.get("model", {})
    name = model.get("name") or model.get("model") or path.name
    arm = manifest.get("arm", "main")
    return f"{name}" + ("" if arm == "main" else f" [{arm}]") + (" (circular)" if manifest.get("circular") else "")


def load_runs(run_dirs: list[str | Path], *, resamples: int = DEFAULT_RESAMPLES) -> list[LoadedRun]:
    runs = []
    labels: Counter[str] = Counter()
    for d in run_dirs:
        path = Path(d)
        manifest, rows = load_run(path)
        if not rows:
            raise RunError(f"{path}: the run has no results yet")
        label = _label(manifest, path)
        labels[label] += 1
        if labels[label] > 1:
            label = f"{label} #{labels[label]}"
        mcq = [r for r in rows if r.get("answer_format", "mcq") == "mcq"]
        free = [r for r in rows if r.get("answer_format", "mcq") != "mcq"]
        runs.append(LoadedRun(label, path, manifest, mcq, summarize_rows(mcq, resamples=resamples), free))
    return runs


# ---------------------------------------------------------------------------------------------- types


def type_label(key: str) -> str:
    """The report's abbreviation of a type (``AbsSpdC``); other benchmarks' types as they are."""
    return TYPE_LABELS.get(key, key)


def type_title(key: str) -> str:
    """Words for the legend: "absolute speed comparison"; free-form and foreign types described plainly."""
    if key in TYPES:
        return TYPES[key].title
    if key == NON_TEMPLATE:
        return "free-form question written by an LLM (no template rule)"
    if key in NUMERIC_TYPES:
        return NUMERIC_TYPES[key].title
    return "type of the question file (not a DSR template)"


def _types(runs: list[LoadedRun]) -> list[str]:
    return ordered_types([r["type"] for run in runs for r in run.scored])


def items_per_type(runs: list[LoadedRun]) -> dict[str, int]:
    """Distinct scored items per type over all runs (the n of each column)."""
    seen: dict[str, set[str]] = {}
    for run in runs:
        for r in run.scored:
            seen.setdefault(r["type"], set()).add(r["item_id"])
    return {t: len(v) for t, v in seen.items()}


# ---------------------------------------------------------------------------------------------- charts


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _figure(*args: Any, **kwargs: Any) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def _type_chance(runs: list[LoadedRun], types: list[str]) -> list[float]:
    rows = [r for run in runs for r in run.scored]
    return [chance_level([r["n_options"] for r in rows if r["type"] == t]) for t in types]


def chart_per_type(runs: list[LoadedRun], types: list[str]) -> bytes:
    """Grouped bars: accuracy per type (and Avg) per run with 95% CI error bars; each column's analytic
    chance as a dashed tick. Large enough to read, legend below, the axis above 100 so nothing is cut."""
    import matplotlib.pyplot as plt

    cols = [*types, "Avg"]
    shown = [r for r in runs if r.summary is not None]
    fig, ax = _figure(figsize=(11.0, 5.4))  # 1210 px at 110 dpi: the page's width, so text stays readable
    width = 0.84 / max(1, len(shown))
    x = np.arange(len(cols))
    colours = plt.get_cmap("tab10").colors
    for k, run in enumerate(shown):
        s = run.summary
        assert s is not None
        ests = [s.per_type.get(t) for t in types] + [s.overall]
        vals = np.array([e.value if e else np.nan for e in ests]) * 100
        lo = np.array([e.lo if e else np.nan for e in ests]) * 100
        hi = np.array([e.hi if e else np.nan for e in ests]) * 100
        err = np.vstack([np.nan_to_num(vals - lo), np.nan_to_num(hi - vals)])
        hatch = "//" if run.blind_control else None
        ax.bar(x + (k - (len(shown) - 1) / 2) * width, vals, width, yerr=err, capsize=2, label=run.label,
               color=colours[k % len(colours)], hatch=hatch, edgecolor="white" if hatch else None, linewidth=0)
    chance = [*_type_chance(runs, types), chance_level([r["n_options"] for run in runs for r in run.scored])]
    for i, c in enumerate(chance):
        if np.isfinite(c):
            ax.hlines(100 * c, i - 0.45, i + 0.45, colors="black", linestyles="--", lw=1.2,
                      label="chance" if i == 0 else None)
    n = items_per_type(runs)
    total = len({r["item_id"] for run in runs for r in run.scored})
    ax.set_xticks(x, [f"{type_label(t)}\nn={n.get(t, 0)}" for t in types] + [f"Avg\nn={total}"],
                  fontsize=10 if len(cols) <= 14 else 8)
    ax.set_ylabel("accuracy (%)", fontsize=11)
    ax.set_ylim(0, 109)  # room above 100 for bars at 100 and their caps
    ax.set_yticks(range(0, 101, 20))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=10, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(4, len(shown) + 1),
              frameon=False)
    ax.set_title("Accuracy per question type (95% CI, videos resampled; hatched: blind controls)", fontsize=12)
    return _png(fig)


def chart_letter_bias(runs: list[LoadedRun]) -> bytes:
    """Predicted-letter shares per run next to the gold-letter shares."""
    letters = sorted({k for r in runs for row in r.scored for k in (row.get("options") or {"A": 0})})
    cats = [*letters, "INVALID"]
    fig, ax = _figure(figsize=(8.0, 4.2))
    width = 0.8 / (len(runs) + 1)
    x = np.arange(len(cats))
    gold = Counter(row["gold"] for row in (runs[0].scored if runs else []))
    total = max(1, sum(gold.values()))
    ax.bar(x - 0.4 + width / 2, [100 * gold.get(c, 0) / total for c in cats], width, color="black", label="gold")
    for k, run in enumerate(runs):
        pred = Counter(row.get("letter") or "INVALID" for row in run.scored)
        n = max(1, len(run.scored))
        ax.bar(x - 0.4 + width * (k + 1.5), [100 * pred.get(c, 0) / n for c in cats], width, label=run.label)
    ax.set_xticks(x, cats, fontsize=10)
    ax.set_ylabel("% of replies", fontsize=11)
    ax.legend(fontsize=10, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(4, len(runs) + 1), frameon=False)
    ax.set_title("Letter bias: predicted vs gold letters", fontsize=12)
    return _png(fig)


def chart_agreement(per_type: Sequence[Any]) -> bytes:
    """Bars of the ground-truth vs extraction agreement per type, n on each column."""
    fig, ax = _figure(figsize=(11.0, 4.4))
    x = np.arange(len(per_type))
    vals = [100 * a.rate if a.n else 0.0 for a in per_type]
    ax.bar(x, vals, 0.7, color=["#4c72b0"] * (len(per_type) - 1) + ["#222222"])
    for i, a in enumerate(per_type):
        ax.text(i, vals[i] + 1.5, f"{a.agree}/{a.n}", ha="center", fontsize=9)
    ax.set_xticks(x, [type_label(a.type) if a.type != "all" else "all" for a in per_type], fontsize=10)
    ax.set_ylim(0, 109)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("same answer (%)", fontsize=11)
    ax.set_title("Questions from ground truth, answered again from the extracted record", fontsize=12)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return _png(fig)


# ---------------------------------------------------------------------------------------------- tables


def _pct(v: float | None) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def _few_videos(est: Estimate | None) -> bool:
    return est is not None and 0 < est.n_clusters < MIN_VIDEOS_FOR_CI


def table_rows(runs: list[LoadedRun]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the Table-4-style table (cells: accuracy % [95% CI]), the n per type and the
    analytic chance line. When the runs cover enough videos overall, a cell whose interval rests on
    fewer than ``MIN_VIDEOS_FOR_CI`` videos carries a dagger (†)."""
    types = _types(runs)
    header = ["Model", *[type_label(t) for t in types], "Avg (micro)", "Macro", "CAA", "Invalid %",
              "n scored / total"]
    dagger = not any(_few_videos(r.summary.overall) for r in runs if r.summary)  # else the warning says it

    def cell(est: Estimate | None) -> str:
        if est is None:
            return "–"
        return est.pct() + (" †" if dagger and _few_videos(est) else "")

    rows = []
    for run in runs:
        s = run.summary
        if s is None:
            rows.append([run.label, *["–"] * (len(types) + 4), f"0 / {len(run.rows)}"])
            continue
        rows.append([run.label, *[cell(s.per_type.get(t)) for t in types], cell(s.overall), cell(s.macro),
                     _pct(s.caa), _pct(s.invalid_rate), f"{s.overall.n} / {len(run.rows)}"])
    if any(r.summary for r in runs):
        n = items_per_type(runs)
        rows.append(["n (questions)", *[str(n.get(t, 0)) for t in types],
                     str(len({r["item_id"] for run in runs for r in run.scored})), "", "", "", ""])
        all_rows = [r for run in runs for r in run.scored]
        rows.append(["Chance (analytic)", *[_pct(c) for c in _type_chance(runs, types)],
                     _pct(chance_level([r["n_options"] for r in all_rows])), "", "0.0", "", ""])
    return header, rows


@dataclass(frozen=True)
class ControlFlag:
    """A blind control's accuracy against chance, and the types where it beats chance for sure.

    flagged_types: (type, accuracy, chance, n, p) where the control is more than ``RED_FLAG_POINTS`` above
    the type's chance *and* an exact one-sided binomial test rejects chance at 5% after a Bonferroni
    correction over the run's types — a handful of lucky guesses on 6 questions is not a flag.
    """

    run: str
    kind: str
    accuracy: float
    chance: float
    flagged_types: tuple[tuple[str, float, float, int, float], ...]

    @property
    def points_above(self) -> float:
        return round(100 * (self.accuracy - self.chance), 9)

    @property
    def red(self) -> bool:
        return self.points_above > RED_FLAG_POINTS or bool(self.flagged_types)


def control_flags(runs: list[LoadedRun]) -> list[ControlFlag]:
    """Every blind control run against chance; ``red`` when it beats chance by more than 10 points overall,
    or on a type where the excess is significant."""
    from scipy.stats import binomtest

    out = []
    for run in runs:
        if run.blind_control is None or run.summary is None:
            continue
        s = run.summary
        per = []
        for t, est in s.per_type.items():
            chance = chance_level([r["n_options"] for r in run.scored if r["type"] == t])
            if est.n and round(100 * (est.value - chance), 9) > RED_FLAG_POINTS:
                p = binomtest(round(est.value * est.n), est.n, chance, alternative="greater").pvalue
                if p * len(s.per_type) < 0.05:
                    per.append((t, est.value, chance, est.n, float(p)))
        per.sort(key=lambda x: x[4])
        out.append(ControlFlag(run.label, run.blind_control, s.overall.value, s.chance, tuple(per)))
    return out


def headline(runs: list[LoadedRun]) -> str:
    """One line: every run's accuracy (models and the oracle first, then the blind controls), chance, n."""
    scored = [r for r in runs if r.summary is not None]

    def acc(r: LoadedRun) -> float:
        return r.summary.overall.value if r.summary else float("nan")

    first = sorted((r for r in scored if not r.blind_control), key=lambda r: -acc(r))
    controls = sorted((r for r in scored if r.blind_control), key=lambda r: -acc(r))
    parts = [f"{r.label} {_pct(acc(r))}%" for r in first]
    if controls:
        parts.append("blind controls: " + ", ".join(f"{r.label} {_pct(acc(r))}%" for r in controls))
    rows = [r for run in scored for r in run.scored]
    if rows:
        parts.append(f"chance {_pct(chance_level([r['n_options'] for r in rows]))}%")
    items = len({r["item_id"] for r in rows})
    videos = len({r["video_id"] for r in rows})
    return " · ".join(parts) + f" — {items} questions on {videos} video{'s' * (videos != 1)}"


def ci_warning(runs: list[LoadedRun]) -> str | None:
    """A warning when the intervals rest on fewer than ``MIN_VIDEOS_FOR_CI`` videos, else None."""
    counts = [r.summary.overall.n_clusters for r in runs if r.summary is not None]
    if not counts or min(counts) >= MIN_VIDEOS_FOR_CI:
        return None
    few = min(counts)
    return (f"Only {few} video{'s' * (few != 1)}: every 95% interval here is a cluster bootstrap over "
            f"{few} video{'s' * (few != 1)}, too few clusters for a reliable interval (it can collapse to a "
            f"point, e.g. 33.3 [33.3, 33.3]). Read the intervals as indicative only; {MIN_VIDEOS_FOR_CI} or "
            "more videos are needed for them to hold.")


def control_deltas(runs: list[LoadedRun]) -> list[tuple[str, str, Paired]]:
    """Main arm minus each control arm of the same model and dataset, paired on items."""
    out = []
    for main in runs:
        if main.manifest.get("arm", "main") != "main":
            continue
        for ctrl in runs:
            if ctrl is main or ctrl.manifest.get("arm", "main") == "main":
                continue
            if ctrl.manifest.get("model") != main.manifest.get("model"):
                continue
            out.append((main.label, ctrl.label, compare_rows(ctrl.rows, main.rows)[0]))
    return out


def compare_rows(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], *,
                 resamples: int = DEFAULT_RESAMPLES) -> tuple[Paired, dict[str, Paired], dict[str, int]]:
    """Paired comparison B − A on items both runs scored (joined by id): overall and per type."""
    a = {(r["item_id"]): r for r in rows_a if not r.get("error")}
    b = {(r["item_id"]): r for r in rows_b if not r.get("error")}
    common = sorted(set(a) & set(b))
    counts = {"common": len(common), "only_a": len(set(a) - set(b)), "only_b": len(set(b) - set(a))}
    ca = [bool(a[k]["correct"]) for k in common]
    cb = [bool(b[k]["correct"]) for k in common]
    vids = [a[k]["video_id"] for k in common]
    overall = paired(ca, cb, vids, resamples=resamples)
    per: dict[str, Paired] = {}
    types = [a[k]["type"] for k in common]
    for t in ordered_types(types):
        idx = [i for i, x in enumerate(types) if x == t]
        per[t] = paired([ca[i] for i in idx], [cb[i] for i in idx], [vids[i] for i in idx], resamples=resamples)
    return overall, per, counts


def compare_markdown(label_a: str, label_b: str, overall: Paired, per: dict[str, Paired],
                     counts: dict[str, int]) -> str:
    lines = [f"# {label_b} vs {label_a}", "",
             f"Items scored by both: {counts['common']} (only in A: {counts['only_a']}, only in B: {counts['only_b']}).",
             "Difference = B − A in accuracy points; 95% CI by paired cluster bootstrap over videos; "
             "McNemar exact binomial when discordant pairs < 25, else χ² with continuity correction.", "",
             "| Type | n | A | B | B − A [95% CI] | B wins | A wins | both right | both wrong | McNemar p |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in [("all", overall), *per.items()]:
        lines.append(f"| {type_label(name)} | {p.n} | {_pct(p.acc_a)} | {_pct(p.acc_b)} | "
                     f"{_diff_text(p)} | {p.b_only} | {p.a_only} | "
                     f"{p.both} | {p.neither} | {p.mcnemar_p:.3g} ({p.mcnemar_test}) |")
    return "\n".join(lines) + "\n"


def worst_items(runs: list[LoadedRun], count: int) -> list[tuple[str, list[dict[str, Any] | None]]]:
    """Items wrong in the most runs (ties: by id), with each run's row (None if the run lacks it)."""
    by_run = [{r["item_id"]: r for r in run.scored} for run in runs]
    wrong: Counter[str] = Counter()
    for rows in by_run:
        for k, r in rows.items():
            wrong[k] += not r["correct"]
    ranked = sorted((k for k, v in wrong.items() if v > 0), key=lambda k: (-wrong[k], k))[:count]
    return [(k, [rows.get(k) for rows in by_run]) for k in ranked]


# ---------------------------------------------------------------------------------------------- the page


class _Page:
    """The report as two parallel documents: Markdown (charts as files beside it) and one HTML page."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.md: list[str] = []
        self.html: list[str] = []

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> None:
        self.md.extend(["", f"{'#' * level} {text}", ""])
        ident = f' id="{html.escape(anchor)}"' if anchor else ""
        self.html.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")

    def para(self, text: str, css: str | None = None) -> None:
        self.md.extend([text, ""])
        cls = f' class="{css}"' if css else ""
        self.html.append(f"<p{cls}>{html.escape(text)}</p>")

    def note(self, kind: str, title: str, text: str, items: Sequence[str] = ()) -> None:
        """A boxed note: ``kind`` is flag (red), warn (amber) or ok (green)."""
        self.md.append(f"> **{title}** {text}")
        self.md.extend(f"> - {x}" for x in items)
        self.md.append("")
        body = "".join(f"<li>{html.escape(x)}</li>" for x in items)
        self.html.append(f'<div class="note {kind}"><strong>{html.escape(title)}</strong> {html.escape(text)}'
                         + (f"<ul>{body}</ul>" if body else "") + "</div>")

    def table(self, header: list[str], rows: list[list[str]], css: dict[tuple[int, int], str] | None = None) -> None:
        self.md.append(_md_table(header, rows))
        self.html.append(_html_table(header, rows, css or {}))

    def image(self, name: str, png: bytes, alt: str) -> None:
        atomic_write_bytes(self.out / name, png)
        self.md.append(f"![{alt}]({name})\n")
        self.html.append(f'<img class="chart" alt="{html.escape(alt)}" src="data:image/png;base64,'
                         f'{base64.b64encode(png).decode()}">')

    def raw(self, markdown: str, html_text: str) -> None:
        self.md.append(markdown)
        self.html.append(html_text)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _html_table(header: list[str], rows: list[list[str]], css: dict[tuple[int, int], str] | None = None) -> str:
    css = css or {}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td{_cls(css.get((i, j)))}>{html.escape(str(c))}</td>" for j, c in enumerate(r)) + "</tr>"
        for i, r in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cls(name: str | None) -> str:
    return f' class="{name}"' if name else ""


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1250px;margin:1.5em auto;padding:0 1em;color:#222}"
    "h1{margin-bottom:0.2em}h2{border-bottom:1px solid #ddd;padding-bottom:0.2em;margin-top:1.6em}"
    ".headline{font-size:1.35em;font-weight:600;margin:0.3em 0 0.8em}"
    ".note{padding:0.6em 0.9em;margin:0.6em 0;border-radius:4px;border-left:6px solid}"
    ".note ul{margin:0.3em 0 0}.flag{background:#fdecea;border-color:#c62828}"
    ".warn{background:#fff8e1;border-color:#f9a825}.ok{background:#e8f5e9;border-color:#2e7d32}"
    "table{border-collapse:collapse;margin:0.5em 0;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#f0f0f0}"
    "td.flagcell{background:#f8c9c4;font-weight:600}td.total{font-weight:600}"
    "img.chart{max-width:100%;display:block;margin:0.5em 0}"
    ".item{border:1px solid #ddd;border-radius:4px;padding:0.5em 0.9em;margin:1em 0}"
    ".strip{display:flex;flex-wrap:wrap;gap:6px}.strip figure{margin:0;width:228px}"
    ".strip img{width:228px;border:1px solid #999}.strip figcaption{font-size:12px;color:#444}"
    ".tables{display:flex;flex-wrap:wrap;gap:0 2em}"
    "ol.options{list-style:none;padding-left:0}ol.options li{padding:1px 4px}"
    "li.gold{background:#e8f5e9;font-weight:600}.small{font-size:12px;color:#555}"
)


# ---------------------------------------------------------------------------------------------- report


def write_report(run_dirs: list[str | Path], out_dir: str | Path, *, worst: int = 12,
                 resamples: int = DEFAULT_RESAMPLES, thumbnails: bool = True,
                 label_checks: Sequence[Any] | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` (+ PNGs) and the self-contained ``report.html`` into ``out_dir``.

    label_checks: optional :class:`dsr.evaluate.agreement.LabelCheck` rows (ground-truth QAs asked again
    of extracted records), shown as a section with agreement per type.
    """
    loaded = load_runs(run_dirs, resamples=resamples)
    runs = [r for r in loaded if r.rows]  # the multiple-choice sections read runs with such rows
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page = _Page(out)
    page.md.extend(["# DSR evaluation report", ""])
    page.html.append("<h1>DSR evaluation report</h1>")
    if runs or not any(r.free_rows for r in loaded):
        _section_headline(page, runs)
    _section_accuracy(page, runs, resamples)
    _section_legend(page, runs)
    _section_controls(page, runs)
    if label_checks is not None:
        _section_agreement(page, label_checks)
    _section_blind_probes(page, runs)
    _section_formats(page, loaded)
    _section_runs(page, loaded)
    _section_failures(page, runs)
    _section_letter_bias(page, runs)
    _section_tiers_and_cost(page, runs)
    _section_differences(page, runs)
    _section_worst(page, runs, worst, thumbnails)
    atomic_write_text(out / "report.md", "\n".join(page.md) + "\n")
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>DSR evaluation report</title>"
           f"<style>{_STYLE}</style></head><body>{''.join(page.html)}</body></html>\n")
    atomic_write_text(out / "report.html", doc)
    return out / "report.md", out / "report.html"


def _section_headline(page: _Page, runs: list[LoadedRun]) -> None:
    if not any(r.summary for r in runs):
        page.note("flag", "No scored items.", "Every item of every run failed; see Failures below.")
        return
    page.para(headline(runs), css="headline")
    flags = control_flags(runs)
    for f in flags:
        if not f.red:
            continue
        items = [f"{type_label(t)} ({type_title(t)}): {100 * acc:.1f}% vs chance {100 * ch:.1f}% "
                 f"(n={n}, binomial p={p:.2g})" for t, acc, ch, n, p in f.flagged_types]
        overall = (f"scores {100 * f.accuracy:.1f}%, {f.points_above:+.1f} points from chance "
                   f"({100 * f.chance:.1f}%)")
        page.note("flag", f"Red flag: {f.run} ({f.kind}) never sees the video and {overall}.",
                  "Questions it answers without the video do not measure video understanding"
                  + (f". More than {RED_FLAG_POINTS:.0f} points above chance, beyond luck, on:" if items else "."),
                  items)
    if flags and not any(f.red for f in flags):
        page.note("ok", "Blind controls are near chance:", "; ".join(
            f"{f.run} {100 * f.accuracy:.1f}% (chance {100 * f.chance:.1f}%)" for f in flags) + ".")
    if not flags:
        page.note("warn", "No blind control in this report.", "Add a text-only run (-m text-prior), an "
                  "answer-letter prior (-m answer-prior) or a model's --arm blind run to check that the "
                  "questions need the video.")
    warning = ci_warning(runs)
    if warning:
        page.note("warn", "Too few videos for the confidence intervals.", warning)


def _section_accuracy(page: _Page, runs: list[LoadedRun], resamples: int) -> None:
    page.heading("Accuracy by question type (%, 95% CI)", anchor="accuracy")
    page.para("Avg is the micro average over items (as DSR-Bench reports it); Macro is the mean of the type "
              f"columns. Intervals: cluster bootstrap over videos, {resamples} resamples, seed 0. "
              "INVALID replies count as wrong; failed items (no reply) are excluded and counted below. "
              "CAA = chance-adjusted accuracy. [n/a]: fewer than two videos, so no interval. "
              f"†: interval over fewer than {MIN_VIDEOS_FOR_CI} videos. Red cells: a blind control more "
              f"than {RED_FLAG_POINTS:.0f} points above chance (on a type: also beyond luck, binomial test). "
              "Type names: see the legend below.")
    header, rows = table_rows(runs)
    types = _types(runs)
    css: dict[tuple[int, int], str] = {}
    flagged = {(f.run, t) for f in control_flags(runs) for t, *_ in f.flagged_types}
    by_label = {r.label: r for r in runs}
    for i, row in enumerate(rows):
        run = by_label.get(row[0])
        if run is None:
            css.update({(i, j): "total" for j in range(len(row))} if row[0].startswith("n (") else {})
            continue
        for j, t in enumerate(types, start=1):
            if (run.label, t) in flagged:
                css[(i, j)] = "flagcell"
        f = next((f for f in control_flags([run]) if f.points_above > RED_FLAG_POINTS), None)
        if f is not None:
            css[(i, len(types) + 1)] = "flagcell"
    page.table(header, rows, css)
    if any(r.summary for r in runs):
        page.image("per_type.png", chart_per_type(runs, types), "accuracy per type")


def _section_formats(page: _Page, runs: list[LoadedRun]) -> None:
    """Numeric and open answers (issue 16): every run's score per format and type, baselines beside models."""
    from dsr.evaluate.formats import SCORE_NAMES
    from dsr.evaluate.run import format_summaries

    per_run = [(run, format_summaries(run.free_rows)) for run in runs if run.free_rows]
    if not per_run:
        return
    page.heading("Numeric and open answers", anchor="formats")
    page.para("Questions without options. Numeric: the reply's number in the asked unit, scored by mean relative "
              "accuracy (MRA, VSI-Bench: the share of tolerances 5%, 10%, … 50% the relative error is within). "
              "Open: the reply read as a state sequence, scored by exact match (and normalised edit similarity). "
              "type-prior is the blind baseline (per type, the mean number or the most frequent sequence of the "
              "other videos); the oracle re-derives each answer from the scene record. 95% intervals resample "
              "videos.")
    for fmt in ("numeric", "open"):
        rows_f = [(run, s[fmt]) for run, s in per_run if fmt in s]
        if not rows_f:
            continue
        types = sorted({t for _, s in rows_f for t in s["per_type"]})
        extra = ["Edit sim. %"] if fmt == "open" else []
        header = ["Run", f"{SCORE_NAMES[fmt]} % [95% CI]", *extra, "Invalid %", "n",
                  *[type_label(t) for t in types]]
        table = []
        for run, s in rows_f:
            sc = s["score"]
            ci = f"[{100 * sc['lo']:.1f}, {100 * sc['hi']:.1f}]" if sc["n_videos"] > 1 else "[n/a]"
            # within one format each run is one model on one file: its name alone reads better than "oracle #3"
            name = run.label.rsplit(" #", 1)[0] if sum(r.model_name == run.model_name for r, _ in rows_f) == 1 \
                else run.label
            cells = [name, f"{100 * sc['value']:.1f} {ci}"]
            if fmt == "open":
                cells.append(f"{100 * s['edit_similarity']:.1f}")
            cells += [f"{100 * s['invalid_rate']:.1f}", str(sc["n"])]
            cells += [f"{100 * s['per_type'][t]['value']:.1f}" if t in s["per_type"] else "–" for t in types]
            table.append(cells)
        page.heading(f"{fmt.capitalize()} answers ({SCORE_NAMES[fmt]})", level=3)
        page.table(header, table)


def _section_legend(page: _Page, runs: list[LoadedRun]) -> None:
    types = _types(runs)
    if not types:
        return
    page.heading("Question types", anchor="legend")
    page.para("Absolute types take the observer's frame at one moment (t_v) for the whole interval; relative "
              "types follow the observer's frame at every moment. Prediction types (…DirP) show the video up "
              "to a moment and ask where an object goes next.")
    n = items_per_type(runs)
    page.table(["Label", "Question type", "n"], [[type_label(t), type_title(t), str(n.get(t, 0))] for t in types])


def _section_controls(page: _Page, runs: list[LoadedRun]) -> None:
    flags = control_flags(runs)
    if flags:
        page.heading("Blind controls against chance", anchor="controls")
        page.para("A blind control answers without the video. Far above chance, it shows that the questions "
                  "give their answers away (option wording, answer-letter balance, priors of the world).")
        rows, css = [], {}
        for i, f in enumerate(flags):
            rows.append([f.run, f.kind, f"{100 * f.accuracy:.1f}", f"{100 * f.chance:.1f}", f"{f.points_above:+.1f}",
                         ", ".join(type_label(t) for t, *_ in f.flagged_types) or "none",
                         "RED FLAG" if f.red else "ok"])
            if f.red:
                css[(i, 6)] = "flagcell"
        page.table(["Run", "Control", "Accuracy %", "Chance %", "Points above chance",
                    f"Types > {RED_FLAG_POINTS:.0f} points above chance (beyond luck)", "Verdict"], rows, css)
    deltas = control_deltas(runs)
    if deltas:
        page.heading("Controls (main arm minus control, paired)", anchor="deltas")
        page.table(["Main", "Control", "n", "Main", "Control", "Main − control [95% CI]", "McNemar p"],
                   [[a, b, str(p.n), _pct(p.acc_b), _pct(p.acc_a), _diff_text(p), f"{p.mcnemar_p:.3g}"]
                    for a, b, p in deltas])


def _section_agreement(page: _Page, checks: Sequence[Any]) -> None:
    from dsr.evaluate.agreement import agreement_per_type

    page.heading("Ground truth vs extracted records", anchor="agreement")
    per = agreement_per_type(list(checks))
    total = per[-1]
    page.para("Each question generated from a ground-truth record is asked again of the record extracted from "
              "the same video alone (same structured query; objects mapped by box IoU, frames by time). "
              f"Same answer on {total.agree} of {total.n} questions ({_pct(total.rate)}%). A question the "
              "extraction cannot answer counts as different, with its reason.")
    page.table(["Type", "Question type", "n", "Same answer", "%", "Why not"],
               [[type_label(a.type) if a.type != "all" else "all", type_title(a.type) if a.type != "all" else "",
                 str(a.n), str(a.agree), _pct(a.rate), ", ".join(f"{k}: {v}" for k, v in a.reasons.items()) or "–"]
                for a in per], {(len(per) - 1, j): "total" for j in range(6)})
    if total.n:
        page.image("agreement.png", chart_agreement(per), "ground truth vs extracted agreement per type")


def _section_runs(page: _Page, runs: list[LoadedRun]) -> None:
    page.heading("Runs", anchor="runs")
    run_rows = []
    for run in runs:
        m = run.manifest
        ds = m.get("dataset", {})
        fp = m.get("frame_policy", {})
        policy = ("fps " + str(fp["fps"])) if fp.get("fps") else (
            f"{fp['num_frames']} uniform frames" if "num_frames" in fp else
            ("no frames" if fp.get("uses_frames") is False else str(fp.get("uses_frames", "–"))))
        run_rows.append([run.label, str(run.path), ds.get("name", "?"), str(ds.get("n_items", "?")),
                         m.get("arm", "main"), policy, str(m.get("judge", "?")), str(m.get("parser_version", "?")),
                         str(m.get("manifest_hash", ""))])
    page.table(["Run", "Directory", "Dataset", "Items", "Arm", "Frames", "Judge", "Parser", "Manifest"], run_rows)


def _section_blind_probes(page: _Page, runs: list[LoadedRun]) -> None:
    """The blind probes of ``dsr audit`` on the items the runs cover, beside every run."""
    from dsr.evaluate.audit_report import blind_probe_table

    blind = blind_probe_table([(run.label, run.rows) for run in runs], _types(runs))
    if blind is None:
        return
    header, rows, note = blind
    page.heading("Blind probes on these items (text only, no model)", anchor="blind-probes")
    page.para(note)
    page.table(header, rows)


def _section_failures(page: _Page, runs: list[LoadedRun]) -> None:
    page.heading("Failures (items without a reply)", anchor="failures")
    fail_rows = []
    for run in runs:
        reasons = Counter(r["error"]["reason"] for r in run.rows if r.get("error"))
        fail_rows.append([run.label, str(sum(reasons.values())),
                          ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) or "none"])
    page.table(["Run", "Failed", "By reason"], fail_rows)


def _section_letter_bias(page: _Page, runs: list[LoadedRun]) -> None:
    page.heading("Letter bias", anchor="letters")
    page.para("Rows: gold letter; columns: predicted letter. The p-value tests whether the valid predicted "
              "letters follow the gold letter distribution (χ²).")
    page.html.append('<div class="tables">')
    for run in runs:
        s = run.summary
        if s is None:
            continue
        cols = sorted({c for row in s.letter_bias.values() for c in row} | set(s.letter_bias))
        cols = [c for c in cols if c != "INVALID"] + (["INVALID"] if any("INVALID" in r for r in
                                                                      s.letter_bias.values()) else [])
        page.html.append("<div>")
        page.para(f"{run.label} — χ² p = {s.bias_chi2_p:.3g}")
        page.table(["gold \\ pred", *cols], [[g, *[str(r.get(c, 0)) for c in cols]] for g, r in s.letter_bias.items()])
        page.html.append("</div>")
    page.html.append("</div>")
    if any(r.summary for r in runs):
        page.image("letter_bias.png", chart_letter_bias(runs), "letter bias")


def _section_tiers_and_cost(page: _Page, runs: list[LoadedRun]) -> None:
    types = _types(runs)
    page.heading("Invalid replies and parse tiers", anchor="tiers")
    tier_names = sorted({t for r in runs if r.summary for t in r.summary.tiers})
    page.table(["Run", "Invalid %", *tier_names, *[f"invalid {type_label(t)}" for t in types]],
               [[r.label, _pct(r.summary.invalid_rate), *[str(r.summary.tiers.get(t, 0)) for t in tier_names],
                 *[_pct(r.summary.invalid_per_type.get(t, float("nan"))) for t in types]]
                for r in runs if r.summary])
    page.heading("Token cost and latency", anchor="cost")
    cost_rows = []
    for run in runs:
        usage: Counter[str] = Counter()
        for r in run.scored:
            usage.update({k: v for k, v in (r.get("usage") or {}).items() if isinstance(v, int)})
        lat = [r["latency_s"] for r in run.scored if isinstance(r.get("latency_s"), (int, float))]
        n_right = sum(1 for r in run.scored if r["correct"])
        total = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
        cost_rows.append([run.label, str(usage.get("prompt_tokens", 0)), str(usage.get("completion_tokens", 0)),
                          str(usage.get("reasoning_tokens", 0)),
                          f"{total / n_right:.0f}" if n_right and total else "–",
                          f"{np.mean(lat):.2f}" if lat else "–"])
    page.table(["Run", "Prompt tokens", "Completion tokens", "Reasoning tokens", "Tokens per correct answer",
                "Mean latency (s)"], cost_rows)


def _section_differences(page: _Page, runs: list[LoadedRun]) -> None:
    diffs = [(run, json.loads((run.path / "differences.json").read_text(encoding="utf-8")))
             for run in runs if (run.path / "differences.json").is_file()]
    if not diffs:
        return
    page.heading("Our parse vs the predictions file's own reading", anchor="differences")
    for run, d in diffs:
        items = d.get("differences", [])
        page.para(f"{run.label}: {d.get('compared', 0)} items compared, {len(items)} differ"
                  + (f", {len(d.get('unknown_ids', []))} ids not in the dataset" if d.get("unknown_ids") else "."))
        if items:
            page.table(["Item", "Ours", "Tier", "Theirs", "Gold", "Ours correct", "Theirs correct", "Raw reply"],
                       [[x["item_id"], str(x["ours"]), str(x["our_tier"]), str(x["theirs"]), x["gold"],
                         str(x["our_correct"]), str(x["their_correct"]), str(x["response"])[:200]] for x in items])


def _section_worst(page: _Page, runs: list[LoadedRun], worst: int, thumbnails: bool) -> None:
    from dsr.evaluate.thumbnails import question_thumbnails

    page.heading(f"Items most runs got wrong (up to {worst})", anchor="items")
    page.para("Each with the frames of its interval (times and video frames below each picture), the boxes of "
              "the objects it names, and the gold option marked.")
    for item_id, per_run in worst_items(runs, worst):
        first = next(r for r in per_run if r)
        options = first.get("options") or {}
        gold = first["gold"]
        title = f"{item_id} — {type_label(first['type'])} ({type_title(first['type'])}), gold {gold}"
        page.md.append(f"### {title}\n")
        page.html.append(f'<div class="item"><h3>{html.escape(title)}</h3>')
        question = first.get("question") or ""
        if question:
            page.md.append(f"Q: {question}\n")
            page.html.append(f"<p>{html.escape(question)}</p>")
        if options:
            page.md.extend([f"- {'**' if k == gold else ''}{k}. {v}{'** ✓ gold' if k == gold else ''}"
                            for k, v in options.items()] + [""])
            page.html.append('<ol class="options">' + "".join(
                f'<li{_cls("gold" if k == gold else None)}>{html.escape(k)}. {html.escape(str(v))}'
                + (" ✓ gold" if k == gold else "") + "</li>" for k, v in options.items()) + "</ol>")
        if thumbnails:
            thumbs = question_thumbnails(first)
            if thumbs:
                page.html.append('<div class="strip">' + "".join(
                    f'<figure><img alt="{html.escape(t.caption)}" src="data:image/jpeg;base64,'
                    f'{base64.b64encode(t.jpeg).decode()}"><figcaption>{html.escape(t.caption)}</figcaption></figure>'
                    for t in thumbs) + "</div>")
                page.md.append(f"({len(thumbs)} frame thumbnails in report.html: "
                               + "; ".join(t.caption for t in thumbs) + ")\n")
        page.table(["Run", "Parsed", "Correct", "Tier", "Raw reply"],
                   [[run.label, (r.get("letter") or "INVALID") if r else "–",
                     ("yes" if r.get("correct") else "no") if r else "–", (r.get("tier") or "") if r else "",
                     (str(r.get("response"))[:300] if r else "")] for run, r in zip(runs, per_run, strict=True)])
        page.html.append("</div>")


def _diff_text(p: object) -> str:
    """Difference B − A in points with its interval, or [n/a] when the bootstrap had too few videos."""
    diff, lo, hi = (100 * float(getattr(p, k)) for k in ("diff", "lo", "hi"))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{diff:+.1f} [n/a]"
    return f"{diff:+.1f} [{lo:+.1f}, {hi:+.1f}]"

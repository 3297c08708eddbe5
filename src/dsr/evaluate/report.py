"""Reports over one or more run directories: Markdown plus one self-contained HTML file.

Sections (``evaluation.md`` §9): runs and their manifests; a Table-4-style table (per type in Table 4's
order, micro "Avg" and macro, each with a 95% cluster-bootstrap CI) with the analytic chance line and
any blind runs; failures by reason; per-type bar charts with error bars; control deltas (main arm
minus each control arm of the same model, paired); letter bias; invalid rates and parse tiers; token
cost; the worst items with frame thumbnails and raw replies. Charts are matplotlib PNGs, inlined as
base64 in the HTML and written beside the Markdown.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsr.atomic import atomic_write_bytes, atomic_write_text
from dsr.evaluate.datasets import TYPE_LABELS
from dsr.evaluate.run import load_run, summarize_rows
from dsr.evaluate.stats import DEFAULT_RESAMPLES, Paired, Summary, chance_level, ordered_types, paired
from dsr.evaluate.store import RunError


@dataclass(frozen=True)
class LoadedRun:
    label: str
    path: Path
    manifest: dict[str, Any]
    rows: list[dict[str, Any]]
    summary: Summary | None

    @property
    def scored(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if not r.get("error")]


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
        runs.append(LoadedRun(label, path, manifest, rows, summarize_rows(rows, resamples=resamples)))
    return runs


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


def chart_per_type(runs: list[LoadedRun], types: list[str]) -> bytes:
    """Grouped bars: accuracy per type (and Avg) per run, 95% CI error bars, chance as a dashed line."""
    cols = [*types, "Avg"]
    fig, ax = _figure(figsize=(max(6.0, 0.7 * len(cols) * max(1, len(runs)) / 2 + 3), 3.8))
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(cols))
    for k, run in enumerate(runs):
        s = run.summary
        if s is None:
            continue
        ests = [s.per_type.get(t) for t in types] + [s.overall]
        vals = np.array([e.value if e else np.nan for e in ests]) * 100
        lo = np.array([e.lo if e else np.nan for e in ests]) * 100
        hi = np.array([e.hi if e else np.nan for e in ests]) * 100
        err = np.vstack([np.nan_to_num(vals - lo), np.nan_to_num(hi - vals)])
        ax.bar(x + (k - (len(runs) - 1) / 2) * width, vals, width, yerr=err, capsize=2, label=run.label)
    chance = [r.summary.chance for r in runs if r.summary]
    if chance:
        ax.axhline(100 * float(np.mean(chance)), ls="--", color="gray", lw=1, label="chance")
    ax.set_xticks(x, [TYPE_LABELS.get(t, t) for t in types] + ["Avg"], rotation=45, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Accuracy per question type (95% CI, videos resampled)")
    return _png(fig)


def chart_letter_bias(runs: list[LoadedRun]) -> bytes:
    """Predicted-letter shares per run next to the gold-letter shares."""
    letters = sorted({k for r in runs for row in r.scored for k in (row.get("options") or {"A": 0})})
    cats = [*letters, "INVALID"]
    fig, ax = _figure(figsize=(6.0, 3.2))
    width = 0.8 / (len(runs) + 1)
    x = np.arange(len(cats))
    gold = Counter(row["gold"] for row in (runs[0].scored if runs else []))
    total = max(1, sum(gold.values()))
    ax.bar(x - 0.4 + width / 2, [100 * gold.get(c, 0) / total for c in cats], width, color="black", label="gold")
    for k, run in enumerate(runs):
        pred = Counter(row.get("letter") or "INVALID" for row in run.scored)
        n = max(1, len(run.scored))
        ax.bar(x - 0.4 + width * (k + 1.5), [100 * pred.get(c, 0) / n for c in cats], width, label=run.label)
    ax.set_xticks(x, cats)
    ax.set_ylabel("% of replies")
    ax.legend(fontsize=7)
    ax.set_title("Letter bias: predicted vs gold letters")
    return _png(fig)


def _thumbnails(row: dict[str, Any], count: int = 4, side: int = 160) -> list[bytes]:
    """A few of the frames the item was shown, as small JPEGs ([] if the video cannot be read)."""
    from dsr.evaluate.sampling import encode_jpeg
    from dsr.video import VideoError, read_frames

    frames = row.get("frames") or {}
    indices = frames.get("indices") or []
    path = row.get("video_path")
    if not path:
        return []
    try:
        if not indices:
            from dsr.video import probe, uniform_indices

            indices = uniform_indices(probe(path).num_frames, count).tolist()
        pick = [indices[round(float(i))] for i in np.linspace(0, len(indices) - 1, min(count, len(indices)))]
        return [encode_jpeg(f, side, 80) for f in read_frames(path, pick)]
    except (VideoError, OSError, ValueError):
        return []


# ---------------------------------------------------------------------------------------------- tables


def _pct(v: float) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def _types(runs: list[LoadedRun]) -> list[str]:
    return ordered_types([r["type"] for run in runs for r in run.scored])


def table_rows(runs: list[LoadedRun]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the Table-4-style table (cells: accuracy % [95% CI])."""
    types = _types(runs)
    header = ["Model", *[TYPE_LABELS.get(t, t) for t in types], "Avg (micro)", "Macro", "CAA", "Invalid %",
              "n scored / total"]
    rows = []
    for run in runs:
        s = run.summary
        if s is None:
            rows.append([run.label, *["–"] * (len(types) + 4), f"0 / {len(run.rows)}"])
            continue
        rows.append([run.label, *[s.per_type[t].pct() if t in s.per_type else "–" for t in types],
                     s.overall.pct(), s.macro.pct(), _pct(s.caa), _pct(s.invalid_rate),
                     f"{s.overall.n} / {len(run.rows)}"])
    if runs and runs[0].summary:
        # analytic chance per type from the option counts of the first run's items
        first = runs[0].scored
        cells = [_pct(chance_level([r["n_options"] for r in first if r["type"] == t])) for t in types]
        rows.append(["Chance (analytic)", *cells, _pct(chance_level([r["n_options"] for r in first])),
                     "", "0.0", "", ""])
    return header, rows


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
        lines.append(f"| {TYPE_LABELS.get(name, name)} | {p.n} | {_pct(p.acc_a)} | {_pct(p.acc_b)} | "
                     f"{_diff_text(p)} | {p.b_only} | {p.a_only} | "
                     f"{p.both} | {p.neither} | {p.mcnemar_p:.3g} ({p.mcnemar_test}) |")
    return "\n".join(lines) + "\n"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def worst_items(runs: list[LoadedRun], count: int) -> list[tuple[str, list[dict[str, Any] | None]]]:
    """Items wrong in the most runs (ties: by id), with each run's row (None if the run lacks it)."""
    by_run = [{r["item_id"]: r for r in run.scored} for run in runs]
    wrong: Counter[str] = Counter()
    for rows in by_run:
        for k, r in rows.items():
            wrong[k] += not r["correct"]
    ranked = sorted((k for k, v in wrong.items() if v > 0), key=lambda k: (-wrong[k], k))[:count]
    return [(k, [rows.get(k) for rows in by_run]) for k in ranked]


# ---------------------------------------------------------------------------------------------- report


def write_report(run_dirs: list[str | Path], out_dir: str | Path, *, worst: int = 12,
                 resamples: int = DEFAULT_RESAMPLES, thumbnails: bool = True) -> tuple[Path, Path]:
    """Write ``report.md`` (+ PNGs) and the self-contained ``report.html`` into ``out_dir``."""
    runs = load_runs(run_dirs, resamples=resamples)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    types = _types(runs)
    header, rows = table_rows(runs)
    charts: dict[str, bytes] = {}
    if any(r.summary for r in runs):
        charts["per_type.png"] = chart_per_type(runs, types)
        charts["letter_bias.png"] = chart_letter_bias(runs)
    for name, data in charts.items():
        atomic_write_bytes(out / name, data)

    md: list[str] = ["# DSR evaluation report", ""]
    hp: list[str] = ["<h1>DSR evaluation report</h1>"]

    def section(title: str) -> None:
        md.extend(["", f"## {title}", ""])
        hp.append(f"<h2>{html.escape(title)}</h2>")

    def para(text: str) -> None:
        md.extend([text, ""])
        hp.append(f"<p>{html.escape(text)}</p>")

    def table(h: list[str], r: list[list[str]]) -> None:
        md.append(_md_table(h, r))
        hp.append(_html_table(h, r))

    def image(name: str, alt: str) -> None:
        md.append(f"![{alt}]({name})\n")
        hp.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,'
                  f'{base64.b64encode(charts[name]).decode()}">')

    section("Runs")
    run_rows = []
    for run in runs:
        m = run.manifest
        ds = m.get("dataset", {})
        fp = m.get("frame_policy", {})
        policy = ("fps " + str(fp["fps"])) if fp.get("fps") else (
            f"{fp['num_frames']} uniform frames" if "num_frames" in fp else
            ("no frames" if fp.get("uses_frames") is False else str(fp.get("uses_frames", "–"))))
        run_rows.append([run.label, str(run.path), ds.get("name", "?"), str(ds.get("n_items", "?")),
                         m.get("arm", "main"), policy, m.get("judge", "?"), str(m.get("parser_version", "?")),
                         str(m.get("manifest_hash", ""))])
    table(["Run", "Directory", "Dataset", "Items", "Arm", "Frames", "Judge", "Parser", "Manifest"], run_rows)

    section("Accuracy by question type (%, 95% CI)")
    para("Avg is the micro average over items (as DSR-Bench reports it); Macro is the mean of the type "
         f"columns. Intervals: cluster bootstrap over videos, {resamples} resamples, seed 0. "
         "INVALID replies count as wrong; failed items (no reply) are excluded and counted below. "
         "CAA = chance-adjusted accuracy. [n/a]: fewer than two videos, so no interval.")
    table(header, rows)
    if "per_type.png" in charts:
        image("per_type.png", "accuracy per type")

    blind = blind_probe_section(runs, types)
    if blind is not None:
        section("Blind probes on these items (text only, no model)")
        para(blind[2])
        table(blind[0], blind[1])

    section("Failures (items without a reply)")
    fail_rows = []
    for run in runs:
        reasons = Counter(r["error"]["reason"] for r in run.rows if r.get("error"))
        fail_rows.append([run.label, str(sum(reasons.values())),
                          ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) or "none"])
    table(["Run", "Failed", "By reason"], fail_rows)

    deltas = control_deltas(runs)
    if deltas:
        section("Controls (main arm minus control, paired)")
        table(["Main", "Control", "n", "Main", "Control", "Main − control [95% CI]", "McNemar p"],
              [[a, b, str(p.n), _pct(p.acc_b), _pct(p.acc_a), _diff_text(p), f"{p.mcnemar_p:.3g}"] for a, b, p in deltas])

    section("Letter bias")
    para("Rows: gold letter; columns: predicted letter. The p-value tests whether the valid predicted "
         "letters follow the gold letter distribution (χ²).")
    for run in runs:
        s = run.summary
        if s is None:
            continue
        cols = sorted({c for row in s.letter_bias.values() for c in row} | set(s.letter_bias))
        cols = [c for c in cols if c != "INVALID"] + (["INVALID"] if any("INVALID" in r for r in
                                                                      s.letter_bias.values()) else [])
        para(f"{run.label} — χ² p = {s.bias_chi2_p:.3g}")
        table(["gold \\ pred", *cols], [[g, *[str(r.get(c, 0)) for c in cols]] for g, r in s.letter_bias.items()])
    if "letter_bias.png" in charts:
        image("letter_bias.png", "letter bias")

    section("Invalid replies and parse tiers")
    tier_names = sorted({t for r in runs if r.summary for t in r.summary.tiers})
    table(["Run", "Invalid %", *[f"{t}" for t in tier_names], *[f"invalid {TYPE_LABELS.get(t, t)}" for t in types]],
          [[r.label, _pct(r.summary.invalid_rate), *[str(r.summary.tiers.get(t, 0)) for t in tier_names],
            *[_pct(r.summary.invalid_per_type.get(t, float("nan"))) for t in types]]
           for r in runs if r.summary])

    section("Token cost and latency")
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
    table(["Run", "Prompt tokens", "Completion tokens", "Reasoning tokens", "Tokens per correct answer",
           "Mean latency (s)"], cost_rows)

    diffs = [(run, json.loads((run.path / "differences.json").read_text(encoding="utf-8")))
             for run in runs if (run.path / "differences.json").is_file()]
    if diffs:
        section("Our parse vs the predictions file's own reading")
        for run, d in diffs:
            items = d.get("differences", [])
            para(f"{run.label}: {d.get('compared', 0)} items compared, {len(items)} differ"
                 + (f", {len(d.get('unknown_ids', []))} ids not in the dataset" if d.get("unknown_ids") else "."))
            if items:
                table(["Item", "Ours", "Tier", "Theirs", "Gold", "Ours correct", "Theirs correct", "Raw reply"],
                      [[x["item_id"], str(x["ours"]), str(x["our_tier"]), str(x["theirs"]), x["gold"],
                        str(x["our_correct"]), str(x["their_correct"]), str(x["response"])[:200]] for x in items])

    section(f"Worst items (up to {worst})")
    for item_id, per_run in worst_items(runs, worst):
        first = next(r for r in per_run if r)
        options = first.get("options") or {}
        md.append(f"### {item_id} ({first['type']}, gold {first['gold']})\n")
        hp.append(f"<h3>{html.escape(item_id)} ({html.escape(first['type'])}, gold {html.escape(first['gold'])})</h3>")
        question = first.get("question") or ""
        if question:
            para("Q: " + question + "  Options: " + "; ".join(f"{k}. {v}" for k, v in options.items()))
        if thumbnails:
            thumbs = _thumbnails(first)
            if thumbs:
                hp.append("<div class='thumbs'>" + "".join(
                    f'<img alt="frame" src="data:image/jpeg;base64,{base64.b64encode(t).decode()}">' for t in thumbs)
                    + "</div>")
                md.append(f"({len(thumbs)} frame thumbnails in report.html)\n")
        table(["Run", "Parsed", "Tier", "Raw reply"],
              [[run.label, (r.get("letter") or "INVALID") if r else "–", (r.get("tier") or "") if r else "",
                (str(r.get("response"))[:300] if r else "")] for run, r in zip(runs, per_run, strict=True)])

    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:0.5em 0;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#f0f0f0}"
             "img{max-width:100%}.thumbs img{margin-right:4px;border:1px solid #999}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>DSR evaluation report</title>"
            f"<style>{style}</style></head><body>{''.join(hp)}</body></html>\n")
    atomic_write_text(out / "report.html", page)
    return out / "report.md", out / "report.html"


def blind_probe_section(runs: list[LoadedRun], types: list[str]) -> tuple[list[str], list[list[str]], str] | None:
    """Issue 10: the blind probes of ``dsr audit`` on the items the runs cover, beside every run
    (header, rows, note; None when the rows carry no question text)."""
    from dsr.evaluate.audit_report import blind_probe_table

    return blind_probe_table([(run.label, run.rows) for run in runs], types)


def _diff_text(p: object) -> str:
    """Difference B − A in points with its interval, or [n/a] when the bootstrap had too few videos."""
    diff, lo, hi = (100 * float(getattr(p, k)) for k in ("diff", "lo", "hi"))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{diff:+.1f} [n/a]"
    return f"{diff:+.1f} [{lo:+.1f}, {hi:+.1f}]"

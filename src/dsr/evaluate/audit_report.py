"""Reports of a validity audit: Markdown (+ PNG charts beside it), one self-contained HTML file, the
per-item table (CSV), a JSON summary, and the pruned subset in the input's own format.

Charts (matplotlib, inlined as base64 PNG in the HTML): blind-probe accuracy per type with 95% CIs
against chance; the gold-letter distribution overall and per type; answer-class entropy per type; the
distribution of per-item bias scores.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dsr.atomic import atomic_open, atomic_write_bytes, atomic_write_text
from dsr.evaluate.audit import AuditResult, LoadedSet, PruneResult, is_json_document
from dsr.evaluate.audit_probes import PROBE_LABELS, PROBES
from dsr.evaluate.datasets import TYPE_LABELS, DatasetError, Item

# a blind probe this far above chance is flagged (the report rule of issue 15)
FLAG_POINTS = 0.10


def _label(t: str) -> str:
    return TYPE_LABELS.get(t, t)


def _pct(v: float | None) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


MIN_VIDEOS_FOR_CI = 10


def few_videos_note(result: AuditResult) -> str | None:
    """A warning when the intervals rest on too few videos to mean much."""
    if result.n_videos >= MIN_VIDEOS_FOR_CI:
        return None
    return (f"Only {result.n_videos} videos: a cluster bootstrap over fewer than {MIN_VIDEOS_FOR_CI} videos gives "
            "intervals that are too narrow, and each fold holds out very few videos; read the figures as rough.")


def verdict(result: AuditResult) -> str:
    """One line: the best blind probe against chance, flagged when > 10 points above."""
    probe, acc = result.max_probe()
    if not probe:
        return "no fitted probe could be scored (fewer than two videos)"
    probe_t, t, acc_t = result.worst_type()
    flag = "FLAG" if acc - result.chance > FLAG_POINTS or acc_t - result.chance_per_type.get(t, 0) > FLAG_POINTS \
        else "ok"
    return (f"{flag}: best blind probe {PROBE_LABELS[probe]} {_pct(acc)}% vs chance {_pct(result.chance)}%; "
            f"worst type {_label(t)}: {PROBE_LABELS[probe_t]} {_pct(acc_t)}%")


# ---------------------------------------------------------------------------------------------- charts


def _figure(*args: Any, **kwargs: Any) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def chart_probes(result: AuditResult) -> bytes:
    """Grouped bars per type (and overall): each probe's accuracy with its 95% CI; chance as black ticks."""
    single = len(result.types) == 1  # one type: its group is the whole set
    cols = [*result.types] if single else [*result.types, "all"]
    probes = [p for p in PROBES if np.isfinite(result.probes[p].overall.value)] or list(PROBES)
    fig, ax = _figure(figsize=(max(7.0, 0.9 * len(cols) + 3), 4.2))
    width = 0.8 / len(probes)
    x = np.arange(len(cols))
    for k, p in enumerate(probes):
        r = result.probes[p]
        ests = [r.per_type[t] for t in result.types] + ([] if single else [r.overall])
        vals = np.array([e.value for e in ests]) * 100
        lo = np.array([e.lo for e in ests]) * 100
        hi = np.array([e.hi for e in ests]) * 100
        err = np.vstack([np.nan_to_num(vals - lo), np.nan_to_num(hi - vals)])
        ax.bar(x + (k - (len(probes) - 1) / 2) * width, vals, width, yerr=err, capsize=2, label=PROBE_LABELS[p])
    chance = [result.chance_per_type[t] for t in result.types] + ([] if single else [result.chance])
    for xi, c in zip(x, chance, strict=True):
        ax.hlines(100 * c, xi - 0.45, xi + 0.45, colors="black", lw=1.5,
                  label="chance" if xi == 0 else None)
    ax.set_xticks(x, [_label(t) for t in result.types] + ([] if single else ["all"]), rotation=45, ha="right")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Blind probes per type (text only; 95% CI, videos resampled)")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def chart_letters(result: AuditResult) -> bytes:
    """Left: gold letter counts against their expectation; right: gold letter shares per type."""
    letters = list(result.letters.counts)
    fig, (a1, a2) = _figure(1, 2, figsize=(10.0, 3.6), gridspec_kw={"width_ratios": [1, 2]})
    x = np.arange(len(letters))
    a1.bar(x, [result.letters.counts[k] for k in letters], color="tab:blue", label="gold")
    a1.scatter(x, [result.letters.expected[k] * sum(result.letters.counts.values())
                   / max(1e-9, sum(result.letters.expected.values())) for k in letters],
               color="black", marker="_", s=400, label="uniform", zorder=3)
    a1.set_xticks(x, letters)
    a1.set_ylabel("items")
    p = result.letters.p_value
    a1.set_title(f"Gold letters (χ² p = {p:.3g})" if np.isfinite(p) else "Gold letters")
    a1.legend(fontsize=8)
    bottom = np.zeros(len(result.types))
    for k in letters:
        shares = np.array([result.balance[t].letters.get(k, 0) / result.balance[t].n for t in result.types]) * 100
        a2.bar(np.arange(len(result.types)), shares, bottom=bottom, label=k)
        bottom += shares
    a2.set_xticks(np.arange(len(result.types)), [_label(t) for t in result.types], rotation=45, ha="right")
    a2.set_ylabel("% of the type's items")
    a2.set_ylim(0, 100)
    a2.axhline(50, color="white", lw=0.8)
    a2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="gold")
    a2.set_title("Gold letter shares per type")
    return _png(fig)


def chart_entropy(result: AuditResult) -> bytes:
    """Normalised answer-class entropy per type, with the share of the most common answer."""
    fig, ax = _figure(figsize=(max(6.0, 0.6 * len(result.types) + 2), 3.4))
    x = np.arange(len(result.types))
    ent = [result.balance[t].normalized_entropy for t in result.types]
    top = [result.balance[t].top_share for t in result.types]
    ax.bar(x, ent, color="tab:green", label="normalised entropy (1 = flat)")
    ax.scatter(x, top, color="tab:red", marker="D", zorder=3, label="share of the top answer")
    for xi, t in zip(x, result.types, strict=True):
        ax.text(xi, 1.02, str(result.balance[t].classes), ha="center", fontsize=7)
    ax.set_xticks(x, [_label(t) for t in result.types], rotation=45, ha="right")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Answer classes per type (number of classes above the bars)")
    return _png(fig)


def chart_bias(result: AuditResult) -> bytes:
    """Histogram of the per-item bias score (classifier's held-out probability of the gold option)."""
    scores = np.array([s.bias_score for s in result.items])
    scores = scores[np.isfinite(scores)]
    fig, ax = _figure(figsize=(6.0, 3.0))
    ax.hist(scores, bins=np.linspace(0, 1, 41), color="tab:purple")
    ax.axvline(result.chance, color="black", ls="--", lw=1, label="chance")
    ax.set_xlabel("held-out probability of the gold option")
    ax.set_ylabel("items")
    ax.legend(fontsize=8)
    ax.set_title("Per-item bias score")
    return _png(fig)


# ---------------------------------------------------------------------------------------------- tables


def probe_table(result: AuditResult) -> tuple[list[str], list[list[str]]]:
    """Probe rows × (all, types): accuracy % [95% CI]; a chance row last."""
    header = ["Probe", "All", *[_label(t) for t in result.types]]
    rows = [[PROBE_LABELS[p], r.overall.pct(), *[r.per_type[t].pct() for t in result.types]]
            for p, r in result.probes.items()]
    rows.append(["chance", _pct(result.chance), *[_pct(result.chance_per_type[t]) for t in result.types]])
    rows.append(["n items / videos", f"{result.n_items} / {result.n_videos}",
                 *[f"{result.balance[t].n} / {result.probes[PROBES[0]].per_type[t].n_clusters}"
                   for t in result.types]])
    return header, rows


def balance_table(result: AuditResult) -> tuple[list[str], list[list[str]]]:
    header = ["Type", "n", "answer classes", "top answer", "top share %", "entropy (bits)", "normalised",
              "segments entropy (bits)", "letters", "letter χ² p"]
    rows = []
    for t in result.types:
        b = result.balance[t]
        rows.append([_label(t), str(b.n), str(b.classes), b.top_class[:60], _pct(b.top_share),
                     f"{b.entropy_bits:.2f}", f"{b.normalized_entropy:.2f}", f"{b.segments_entropy_bits:.2f}",
                     " ".join(f"{k}={v}" for k, v in b.letters.items()),
                     f"{b.letter_p:.3g}" if np.isfinite(b.letter_p) else "–"])
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(c: str) -> str:
        return str(c).replace("|", "\\|")

    out = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---------------------------------------------------------------------------------------------- writers


def write_items_csv(path: Path, result: AuditResult, items: Sequence[Item]) -> None:
    """One row per audited item, most biased first: scores, the probes that get it, question, gold text."""
    by_id = {it.item_id: it for it in items}
    ranked = sorted(result.items, key=lambda s: (-np.nan_to_num(s.bias_score, nan=-1.0), s.item_id))
    with atomic_open(path, "w") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "video_id", "type", "gold", "n_options", "bias_score", *PROBES,
                    "probes_right", "question", "gold_text"])
        for s in ranked:
            it = by_id.get(s.item_id)
            w.writerow([s.item_id, s.video_id, s.type, s.gold, s.n_options,
                        f"{s.bias_score:.4f}" if np.isfinite(s.bias_score) else "",
                        *[f"{s.credit[p]:.3f}" if np.isfinite(s.credit[p]) else "" for p in PROBES],
                        ";".join(s.probes_right), it.question if it else "", it.options[it.answer] if it else ""])


def write_audit_report(out_dir: str | Path, result: AuditResult, items: Sequence[Item], *,
                       sources: Sequence[str] = (), examples: dict[str, str] | None = None,
                       prune: PruneResult | None = None, prune_path: str | None = None) -> dict[str, Path]:
    """Write ``audit.md`` (+ PNGs), ``audit.html`` (self-contained), ``items.csv`` and ``audit.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    charts: dict[str, bytes] = {"probes.png": chart_probes(result), "letters.png": chart_letters(result),
                                "entropy.png": chart_entropy(result)}
    if any(np.isfinite(s.bias_score) for s in result.items):
        charts["bias.png"] = chart_bias(result)
    for name, data in charts.items():
        atomic_write_bytes(out / name, data)

    md: list[str] = ["# Validity audit", ""]
    hp: list[str] = ["<h1>Validity audit</h1>"]

    def section(title: str) -> None:
        md.extend(["", f"## {title}", ""])
        hp.append(f"<h2>{html.escape(title)}</h2>")

    def para(text: str, cls: str = "") -> None:
        md.extend([text, ""])
        hp.append(f"<p class='{cls}'>{html.escape(text)}</p>" if cls else f"<p>{html.escape(text)}</p>")

    def table(h: list[str], r: list[list[str]]) -> None:
        md.append(_md_table(h, r))
        hp.append(_html_table(h, r))

    def image(name: str, alt: str) -> None:
        if name in charts:
            md.append(f"![{alt}]({name})\n")
            hp.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,'
                      f'{base64.b64encode(charts[name]).decode()}">')

    line = verdict(result)
    para(line, "flag" if line.startswith("FLAG") else "ok")
    para(f"{result.n_items} items on {result.n_videos} videos, {len(result.types)} type(s)"
         + (f", from {', '.join(sources)}" if sources else "") + ". Offline; no model saw any video.")
    warning = few_videos_note(result)
    if warning:
        para(warning, "warn")

    section("Blind probes (held-out accuracy %, 95% CI)")
    para(f"Each probe sees only the question, the option texts, the letters and the type. Letter prior, "
         f"text prior and the classifier are fitted on {result.folds - 1} of {result.folds} folds of the "
         f"set's own items (folds grouped by video, seed {result.seed}) and scored on the held-out fold; "
         "fewest segments and shortest option need no fitting. A tie among m options, one of them gold, "
         f"counts 1/m. Intervals: cluster bootstrap over videos, {result.resamples} resamples. "
         "Chance is the mean of 1/(number of options).")
    table(*probe_table(result))
    image("probes.png", "blind probes per type")

    section("Letters")
    lt = result.letters
    para("Gold letters: " + ", ".join(f"{k} {v} (expected {lt.expected[k]:.1f})" for k, v in lt.counts.items())
         + (f"; χ² = {lt.chi2:.2f}, p = {lt.p_value:.3g}." if np.isfinite(lt.p_value) else "."))
    image("letters.png", "gold letters")

    section("Answer balance per type")
    para("An answer class is the gold option's normalised text. Normalised entropy is entropy / log2(classes): "
         "1 when every class is equally common, 0 when one class is every answer. The letter χ² test is "
         "per type.")
    table(*balance_table(result))
    image("entropy.png", "answer-class entropy per type")

    section("Most biased items")
    para("Bias score = the k-fold classifier's held-out probability of the gold option (chance "
         f"{_pct(result.chance)}%). The full table, most biased first, is items.csv.")
    image("bias.png", "bias score histogram")
    by_id = {it.item_id: it for it in items}
    top = sorted((s for s in result.items if np.isfinite(s.bias_score)), key=lambda s: -s.bias_score)[:15]
    table(["Item", "Type", "Bias", "Probes right", "Question", "Gold"],
          [[s.item_id, _label(s.type), f"{s.bias_score:.2f}", ", ".join(s.probes_right) or "–",
            by_id[s.item_id].question[:120], by_id[s.item_id].options[s.gold][:80]] for s in top])

    if result.problems:
        section("Problems in the input (counted, not fatal)")
        table(["Problem", "Items", "Example"], [[k, str(v), (examples or {}).get(k, "")]
                                                for k, v in sorted(result.problems.items())])

    if prune is not None:
        section("Pruned subset")
        a = prune.after
        para(("PASSED" if prune.passed else "NOT PASSED")
             + f": {len(prune.kept)} of {prune.before.n_items} items kept after {prune.rounds} round(s), "
               f"{len(prune.removed)} removed" + (f", written to {prune_path}" if prune_path else "")
             + f". Target: every probe, re-fitted on the subset, ≤ chance + {100 * prune.margin:.0f} points.")
        rows = [[PROBE_LABELS[p], prune.before.probes[p].overall.pct(), a.probes[p].overall.pct()]
                for p in PROBES]
        rows.append(["chance", _pct(prune.before.chance), _pct(a.chance)])
        table(["Probe", "before", "after"], rows)
        mix_b = {t: prune.before.balance[t].n for t in prune.before.types}
        mix_a = {t: a.balance[t].n for t in a.types}
        table(["Type", "before", "after", "share before %", "share after %"],
              [[_label(t), str(mix_b[t]), str(mix_a.get(t, 0)), _pct(mix_b[t] / prune.before.n_items),
                _pct(mix_a.get(t, 0) / max(1, a.n_items))] for t in prune.before.types])
        why = Counter(",".join(r.probes_right) or "(none)" for r in prune.removed)
        table(["Probes that had the removed item", "Items"], [[k, str(v)] for k, v in why.most_common()])
        para("Every removed item, with its round, bias score and probes, is in removed.csv.")

    atomic_write_text(out / "audit.md", "\n".join(md) + "\n")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:0.5em 0;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#f0f0f0}"
             "img{max-width:100%;display:block;margin:0.5em 0}"
             ".flag{background:#fdd;border-left:6px solid #c00;padding:6px;font-weight:bold}"
             ".ok{background:#dfd;border-left:6px solid #080;padding:6px;font-weight:bold}"
             ".warn{background:#fff8e1;border-left:6px solid #f9a825;padding:6px}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Validity audit</title>"
            f"<style>{style}</style></head><body>{''.join(hp)}</body></html>\n")
    atomic_write_text(out / "audit.html", page)
    write_items_csv(out / "items.csv", result, items)
    summary = result.to_json() | {"verdict": line, "sources": list(sources)}
    if prune is not None:
        summary["prune"] = {"kept": len(prune.kept), "removed": len(prune.removed), "rounds": prune.rounds,
                            "margin": prune.margin, "passed": prune.passed, "after": prune.after.to_json(),
                            "path": prune_path}
        with atomic_open(out / "removed.csv", "w") as fh:
            w = csv.writer(fh)
            w.writerow(["item_id", "type", "round", "bias_score", "probes_right", "question", "gold_text"])
            for r in prune.removed:
                it = by_id.get(r.item_id)
                w.writerow([r.item_id, r.type, r.round, f"{r.bias_score:.4f}" if np.isfinite(r.bias_score) else "",
                            ";".join(r.probes_right), it.question if it else "", it.options[it.answer] if it else ""])
    atomic_write_text(out / "audit.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    return {"markdown": out / "audit.md", "html": out / "audit.html", "items": out / "items.csv",
            "json": out / "audit.json"}


# ---------------------------------------------------------------------------------------------- subsets


def write_subset(path: str | Path, loaded: LoadedSet, keep_ids: set[str]) -> str:
    """Write the kept items in the input's own format where possible, else as JSON Lines of
    ``Item.to_json()`` (read back by the ``plain`` loader). Returns the format written."""
    out = Path(path)
    kept_rows = [(loaded.origin[i], it) for i, it in enumerate(loaded.items) if it.item_id in keep_ids]
    single = len(loaded.files) == 1
    src, fmt = loaded.files[0]
    src_path = Path(src)
    same_suffix = out.suffix == src_path.suffix
    if single and same_suffix and fmt in ("qa_jsonl", "plain", "vlm4d") and all(n >= 0 for (_, n), _ in kept_rows):
        _write_rows_like(src_path, out, {n for (_, n), _ in kept_rows})
        return fmt
    if single and same_suffix and fmt == "dsr_parquet":
        _write_parquet_subset(src_path, out, [it for _, it in kept_rows], [it for it in loaded.items])
        return fmt
    if out.suffix not in (".jsonl", ".json"):
        raise DatasetError(f"{out}: the subset of this input can be written as .jsonl only "
                           f"(input format {fmt}{'' if single else ', several files'})")
    with atomic_open(out, "w") as fh:
        for _, it in kept_rows:
            fh.write(json.dumps(it.to_json(), ensure_ascii=False) + "\n")
    return "plain"


def _write_rows_like(src: Path, out: Path, rows: set[int]) -> None:
    """Copy the kept rows of a JSON list / JSON Lines file, untouched, in their order."""
    text = src.read_text(encoding="utf-8")
    if is_json_document(src, text):
        data = json.loads(text)
        if isinstance(data, dict):
            key = "items" if isinstance(data.get("items"), list) else "data"
            data = dict(data) | {key: [r for n, r in enumerate(data[key]) if n in rows]}
        else:
            data = [r for n, r in enumerate(data) if n in rows]
        atomic_write_text(out, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        return
    lines = [ln for ln in text.splitlines() if ln.strip()]
    atomic_write_text(out, "".join(ln + "\n" for n, ln in enumerate(lines) if n in rows))


def _write_parquet_subset(src: Path, out: Path, kept: list[Item], all_items: list[Item]) -> None:
    """Rows of a DSR-Bench parquet whose items are kept (items follow row order; skipped rows are
    those the loader dropped)."""
    import pyarrow.parquet as pq

    table = pq.read_table(src)
    questions = table.column("question").to_pylist()
    vid_col = "video_id" if "video_id" in table.column_names else "videoID"
    videos = [str(v) for v in table.column(vid_col).to_pylist()]
    keep_ids = {it.item_id for it in kept}
    take: list[int] = []
    r = 0
    for it in all_items:
        while r < len(questions) and not (questions[r] == it.question and videos[r] == it.video_id):
            r += 1
        if r == len(questions):
            raise DatasetError(f"{src}: cannot match item {it.item_id!r} to a parquet row")
        if it.item_id in keep_ids:
            take.append(r)
        r += 1
    with atomic_open(out, "wb") as fh:
        pq.write_table(table.take(take), fh)


# ---------------------------------------------------------------------------------------------- eval report


def items_from_results(rows: Sequence[dict[str, Any]]) -> list[Item]:
    """The distinct items behind run result rows (``dsr.evaluate.run`` lines), one per base id: a
    circular run's rotations count once, as their unrotated (``#rot0``) or first row."""
    by_base: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("error") or not r.get("options") or r.get("gold") not in (r.get("options") or {}):
            continue
        base = r.get("base_id") or r["item_id"]
        if base not in by_base or str(r["item_id"]).endswith("#rot0") or r["item_id"] == base:
            by_base[base] = r
    return [Item(item_id=b, video_id=str(r["video_id"]), video_path=None, question=str(r.get("question") or ""),
                 options={str(k): str(v) for k, v in r["options"].items()}, answer=str(r["gold"]),
                 type=str(r["type"])) for b, r in by_base.items()]


def blind_probe_table(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]], types: Sequence[str], *,
                      folds: int = 5, seed: int = 0, resamples: int = 1000
                      ) -> tuple[list[str], list[list[str]], str] | None:
    """The blind probes of the items the runs cover, beside every run, for ``dsr eval report``.

    runs: (label, result rows) per run; types: the report's type columns. Rows: each run's accuracy
    with the best blind probe on *its own* items and its margin over it, then each probe (held out,
    fitted on the union of the runs' items) and chance. None when no item has a question and options.
    """
    union: dict[str, Item] = {}
    for _, rows in runs:
        for it in items_from_results(rows):
            union.setdefault(it.item_id, it)
    items = [it for it in union.values() if it.question]
    if not items:
        return None
    from dsr.evaluate.audit import audit_items

    try:
        result = audit_items(items, folds=folds, seed=seed, resamples=resamples)
    except DatasetError:  # no item with two options and its gold among them
        return None
    credit = {s.item_id: s.credit for s in result.items}
    header = ["Run / blind probe", "All", *[_label(t) for t in types], "Best probe on its items", "Margin (points)"]
    out: list[list[str]] = []
    for label, rows in runs:
        scored = [r for r in rows if not r.get("error")]
        if not scored:
            continue
        per_type = {t: [bool(r["correct"]) for r in scored if r["type"] == t] for t in types}
        acc = float(np.mean([bool(r["correct"]) for r in scored]))
        ids = {(r.get("base_id") or r["item_id"]) for r in scored} & set(credit)
        best_name, best = "", float("nan")
        for p in PROBES:
            vals = [credit[i][p] for i in ids if np.isfinite(credit[i][p])]
            if vals and not (np.mean(vals) <= best):
                best_name, best = p, float(np.mean(vals))
        out.append([label, _pct(acc), *[_pct(float(np.mean(v))) if v else "–" for v in per_type.values()],
                    f"{PROBE_LABELS.get(best_name, '–')} {_pct(best)}" if best_name else "–",
                    f"{100 * (acc - best):+.1f}" if np.isfinite(best) else "–"])
    for p, r in result.probes.items():
        out.append([f"probe: {PROBE_LABELS[p]}", r.overall.pct(),
                    *[r.per_type[t].pct() if t in r.per_type else "–" for t in types], "", ""])
    out.append(["chance", _pct(result.chance), *[_pct(result.chance_per_type[t]) if t in result.chance_per_type
                                                else "–" for t in types], "", ""])
    fitting = (f"letter prior, text prior and a text-only classifier are fitted on {result.folds - 1} of "
               f"{result.folds} folds grouped by video and scored on the held-out one" if result.folds >= 2 else
               "with fewer than two videos the fitted probes (letter prior, text prior, classifier) are not scored")
    note = (f"Blind probes see only the text of the {result.n_items} items these runs cover (on "
            f"{result.n_videos} videos): {fitting}; fewest "
            "segments and shortest option need no fitting. A model's margin over the best probe on its own items "
            "is what its use of the video adds beyond the text (dsr audit gives the full audit). "
            + verdict(result) + "." + (" " + few_videos_note(result) if few_videos_note(result) else ""))
    return header, out, note

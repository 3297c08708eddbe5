"""Run a model over a dataset into a crash-safe, resumable run directory, and score runs offline.

``run_eval`` writes the manifest before any inference, then serves frames, prompts the model
(``concurrency`` calls in flight), parses every reply with the one parser and appends one result line
per item as it arrives. Per-item failures (missing or corrupt video, server errors, bad bodies) are
recorded with a reason and the run goes on; transient failures are retried on the next run.

Two guards make a failing run say so early: the run directory is locked (a second process on it stops
at once, :mod:`dsr.locking`), and a circuit breaker stops the run when ``max_consecutive_failures``
items in a row fail at the model (a dead, hung or refusing endpoint) — the items already done are
kept and the same command resumes once the endpoint is back.

Result line fields: ``item_id, base_id, video_id, video_path, question, type, arm, manifest_hash, response, letter, tier,
invalid, gold, correct, n_options, options, usage, latency_s, error ({reason, message} or null),
frames ({indices, timestamps_s, limit_s}), request_digest, parser_version, query and record_path`` (our QA
exports' structured query and scene record, or null).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import dsr
from dsr.atomic import atomic_write_text
from dsr.errors import DsrError
from dsr.evaluate.base import TRANSIENT_REASONS, Model, ModelError, Request
from dsr.evaluate.datasets import Dataset, Item, base_id, rotate_options
from dsr.evaluate.formats import score_reply
from dsr.evaluate.judge import Judge
from dsr.evaluate.parse import PARSER_VERSION
from dsr.evaluate.prompt import ARMS, arm_order, build_prompt, free_prompt_hash, prompt_hash
from dsr.evaluate.protocols import protocol_record
from dsr.evaluate.sampling import FrameError, FramePolicy, serve_frames
from dsr.evaluate.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, Summary, cluster_bootstrap, summarize
from dsr.evaluate.store import (
    SUMMARY,
    ResultWriter,
    git_hash,
    open_results,
    read_manifest,
    read_results,
    result_key,
    write_or_check_manifest,
)
from dsr.locking import lock_folder
from dsr.video import VideoError

# Failures of the model call itself (the endpoint or backend), as opposed to the item's data (a missing
# video, no record for the oracle): only these trip the circuit breaker.
MODEL_FAILURES = frozenset({"server_error", "rate_limited", "timeout", "connection_error", "client_error",
                            "bad_response", "model_error"})
DEFAULT_MAX_CONSECUTIVE_FAILURES = 10


@dataclass(frozen=True)
class RunConfig:
    """Everything about a run except the dataset and the model. Copied into the manifest."""

    policy: FramePolicy = dataclasses.field(default_factory=FramePolicy)
    arm: str = "main"
    prompt_style: str = "dsr"
    # the named protocol (dsr.evaluate.protocols) the policy and prompt start from; recorded with any overrides
    protocol: str = "paper"
    concurrency: int = 8
    seed: int = 0
    circular: bool = False
    limit: int | None = None
    # stop the run after this many items in a row failed at the model (0 = never); not in the manifest
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES

    def __post_init__(self) -> None:
        if self.arm not in ARMS:
            raise DsrError(f"unknown arm {self.arm!r} (choose from {', '.join(ARMS)})")
        if self.concurrency < 1:
            raise DsrError("concurrency must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise DsrError(f"limit must be >= 1, got {self.limit}")
        if self.max_consecutive_failures < 0:
            raise DsrError(f"max_consecutive_failures must be >= 0 (0 = never stop), got {self.max_consecutive_failures}")


def expand_items(dataset: Dataset, config: RunConfig) -> list[Item]:
    """The items a run evaluates: the dataset (first ``limit``), times every rotation if circular."""
    items = list(dataset.items[: config.limit] if config.limit else dataset.items)
    if config.circular:
        items = [rotate_options(it, k) for it in items for k in range(len(it.options))]
    return items


def build_manifest(dataset: Dataset, model: Model, config: RunConfig, judge: Judge | None = None) -> dict[str, Any]:
    items = expand_items(dataset, config)
    return {
        "schema": "dsr.eval.run/1",
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": {"name": dataset.name, "path": dataset.path, "format": dataset.format,
                    "file_sha256": dataset.file_sha256, "content_sha256": dataset.content_hash,
                    "row_order_sha256": dataset.row_order_hash, "n_items": len(dataset.items),
                    "n_evaluated": len(items), "limit": config.limit},
        "frame_policy": config.policy.to_json() if model.uses_frames else {"uses_frames": False},
        "arm": config.arm,
        "circular": config.circular,
        "prompt": {"style": config.prompt_style,
                   "hash": prompt_hash(config.prompt_style, config.policy.timestamps_in_prompt)},
        "protocol": protocol_record(config.protocol, config.policy, config.prompt_style),
        **({"free_prompt": free_prompt_hash(), "answer_formats": sorted({it.answer_format for it in items})}
           if any(not it.is_mcq for it in items) else {}),
        "model": model.identity(),
        "judge": judge.identity() if judge else "rules only",
        "parser_version": PARSER_VERSION,
        "seed": config.seed,
        "dsr_version": dsr.__version__,
        "code": {"git": git_hash()},
    }


def _score_row(item: Item, response: str | None) -> dict[str, Any]:
    return score_reply(item, response)


def _evaluate_item(item: Item, model: Model, config: RunConfig, cache_dir: Path | None,
                   manifest_hash: str, judge: Judge | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"item_id": item.item_id, "base_id": base_id(item.item_id), "video_id": item.video_id,
                           "video_path": item.video_path, "question": item.question,
                           "type": item.type, "arm": config.arm, "manifest_hash": manifest_hash,
                           "gold": item.answer, "n_options": len(item.options), "options": dict(item.options),
                           "parser_version": PARSER_VERSION,
                           "response": None, "letter": None, "tier": None, "invalid": None, "correct": None,
                           "usage": {}, "latency_s": None, "error": None, "frames": None,
                           # what the report needs to show the question's interval and named objects
                           "query": item.query, "record_path": item.record_path,
                           "answer_format": item.answer_format}
    if not item.is_mcq:
        row.update(answer_value=item.answer_value, unit=item.unit, rule=item.rule)
    try:
        jpegs: tuple[bytes, ...] = ()
        stamps: tuple[float, ...] = ()
        if model.uses_frames and config.arm != "blind":
            if not item.video_path:
                raise ModelError("missing_video", "the dataset names no local video for this item")
            served = serve_frames(item.video_path, item.type, item.visible_until_s, config.policy, cache_dir)
            jpegs, stamps = served.jpegs, served.timestamps_s
            row["frames"] = {"indices": list(served.indices), "timestamps_s": [round(t, 4) for t in stamps],
                             "limit_s": served.limit_s}
        prompt = build_prompt(item, jpegs, stamps, arm=config.arm, timestamps=config.policy.timestamps_in_prompt,
                              seed=config.seed, style=config.prompt_style)
        row["request_digest"] = hashlib.sha256(
            prompt.text.encode() + b"".join(hashlib.sha256(j).digest() for j in prompt.images)).hexdigest()[:16]
        order = arm_order(config.arm, len(jpegs), item.item_id, config.seed)
        reply = model.generate(Request(item=item, prompt=prompt, timestamps_s=tuple(stamps[i] for i in order)))
    except ModelError as exc:
        row["error"] = {"reason": exc.reason, "message": str(exc)[:300]}
        return row
    except VideoError as exc:
        reason = "missing_video" if "not found" in str(exc) else "corrupt_video"
        row["error"] = {"reason": reason, "message": str(exc)[:300]}
        return row
    except FrameError as exc:
        row["error"] = {"reason": "no_visible_frames", "message": str(exc)[:300]}
        return row
    except Exception as exc:  # a model backend bug must not stop the run; it is recorded and retried
        row["error"] = {"reason": "model_error", "message": f"{exc.__class__.__name__}: {exc}"[:300]}
        return row
    row["response"] = reply.text
    row["usage"] = dict(reply.usage)
    row["latency_s"] = round(reply.latency_s, 4)
    row.update(_score_row(item, reply.text))
    if judge is not None and row["invalid"] and item.is_mcq:
        try:
            letter, raw, cached = judge.decide(item, reply.text)
        except ModelError as exc:  # the judge failing leaves the rule verdict (INVALID) standing
            row["judge"] = {"error": exc.reason}
        else:
            row["judge"] = {"raw": raw, "cached": cached, "letter": letter}
            if letter is not None:
                row.update({"letter": letter, "tier": "judge", "invalid": False, "correct": letter == item.answer})
    return row


@dataclass(frozen=True)
class RunOutcome:
    """What one invocation did. Counts ``n_scored``/``n_failed``/``n_not_run`` cover the items it was
    asked for (resumed ones included); ``stopped`` is the circuit breaker's one-line reason, if it tripped."""

    run_dir: Path
    n_total: int
    n_new: int
    n_resumed: int
    failures: dict[str, int]
    elapsed_s: float
    n_scored: int = 0
    n_failed: int = 0
    n_not_run: int = 0
    stopped: str | None = None


class _Breaker:
    """Counts items that failed at the model in a row (in completion order; items that finish together in
    dataset order); a reply resets the count."""

    def __init__(self, limit: int) -> None:
        self.limit, self.streak, self.last = limit, 0, ""

    def record(self, error: dict[str, Any] | None) -> bool:
        """Count one finished item; True once ``limit`` model failures came in a row."""
        if error is None:
            self.streak = 0
        elif error.get("reason") in MODEL_FAILURES:
            self.streak += 1
            self.last = str(error.get("message") or error.get("reason"))
        return bool(self.limit) and self.streak >= self.limit


def run_eval(dataset: Dataset, model: Model, run_dir: str | Path, config: RunConfig | None = None, *,
             cache_dir: str | Path | None = None, progress: bool = True, judge: Judge | None = None) -> RunOutcome:
    """Evaluate ``model`` on ``dataset`` into ``run_dir``, resuming whatever is already there.

    Holds an exclusive lock on ``run_dir`` (:class:`dsr.locking.LockedError` if another process has it).
    judge: an optional LLM judge, asked only about INVALID replies (cached in ``judge_cache.jsonl``).
    """
    config = config or RunConfig()
    out = Path(run_dir)
    with lock_folder(out):
        return _run_locked(dataset, model, out, config, cache_dir=cache_dir, progress=progress, judge=judge)


def _run_locked(dataset: Dataset, model: Model, out: Path, config: RunConfig, *, cache_dir: str | Path | None,
                progress: bool, judge: Judge | None) -> RunOutcome:
    manifest = write_or_check_manifest(out, build_manifest(dataset, model, config, judge))
    if judge is not None and judge.cache_path is None:
        judge.cache_path = out / "judge_cache.jsonl"
    mhash = manifest["manifest_hash"]
    cache = Path(cache_dir) if cache_dir else out / "frame_cache"
    done, _ = open_results(out, TRANSIENT_REASONS)
    items = expand_items(dataset, config)
    todo = [it for it in items if (it.item_id, config.arm) not in done]
    start = time.perf_counter()
    failures: Counter[str] = Counter()
    breaker = _Breaker(config.max_consecutive_failures)
    stopped: str | None = None
    written = 0
    label = f"{model.name} [{config.arm}]"
    with (ResultWriter(out) as writer, _progress(progress, len(items), len(items) - len(todo), label) as advance,
          ThreadPoolExecutor(max_workers=config.concurrency) as pool):
        pending: set[Future[dict[str, Any]]] = set()
        # submission order: items that finish together are counted in dataset order, so the breaker's streak
        # does not depend on how a set happens to iterate
        order: dict[Future[dict[str, Any]], int] = {}
        serial = itertools.count()
        queue = iter(todo)

        def submit(batch: list[Item]) -> None:
            for it in batch:
                fut = pool.submit(_evaluate_item, it, model, config, cache, mhash, judge)
                order[fut] = next(serial)
                pending.add(fut)

        # keep a bounded window of submitted items so a huge dataset does not pile up futures
        submit(_take(queue, 2 * config.concurrency))
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(finished, key=order.__getitem__):
                order.pop(fut)
                if fut.cancelled():
                    continue
                row = fut.result()
                writer.append(row)
                written += 1
                if row["error"]:
                    failures[row["error"]["reason"]] += 1
                advance()
                if breaker.record(row["error"]) and stopped is None:
                    stopped = (f"stopped after {breaker.streak} items in a row failed at the model "
                               f"({breaker.last}); the items done are kept: fix the endpoint and run the "
                               "same command again to resume")
                    for other in pending:  # items not started yet stay unrun (no line): the resume does them
                        other.cancel()
            if stopped is None:
                submit(_take(queue, len(finished)))
    close = getattr(model, "close", None)
    if callable(close):
        close()
    elapsed = time.perf_counter() - start
    write_summary(out)
    final = {result_key(r): r for r in read_results(out)}
    rows = [final.get((it.item_id, config.arm)) for it in items]
    n_failed = sum(1 for r in rows if r is not None and r.get("error"))
    n_not_run = sum(1 for r in rows if r is None)
    return RunOutcome(run_dir=out, n_total=len(items), n_new=written, n_resumed=len(items) - len(todo),
                      failures=dict(failures), elapsed_s=elapsed, n_scored=len(items) - n_failed - n_not_run,
                      n_failed=n_failed, n_not_run=n_not_run, stopped=stopped)


def _take(it: Iterable[Item], n: int) -> list[Item]:
    out = []
    for x in it:
        out.append(x)
        if len(out) >= n:
            break
    return out


class _progress:
    """A rich progress bar (or nothing) as a context manager yielding an ``advance()`` callable."""

    def __init__(self, enabled: bool, total: int, completed: int, label: str) -> None:
        self.enabled, self.total, self.completed, self.label = enabled, total, completed, label

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                             TimeRemainingColumn(), transient=False)
        self._bar.__enter__()
        task = self._bar.add_task(self.label, total=self.total, completed=self.completed)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.__exit__(*exc)


# ---------------------------------------------------------------------------------------------- scoring


def rescore_rows(rows: list[dict[str, Any]], items: dict[str, Item] | None = None) -> list[dict[str, Any]]:
    """Re-parse every reply with the current parser (offline, idempotent). Failed rows stay failed."""
    out = []
    for row in rows:
        row = dict(row)
        if row.get("error") is None and row.get("response") is not None:
            item = (items or {}).get(row["item_id"])
            if item is None:
                options = row.get("options")
                if options is None:
                    out.append(row)
                    continue
                item = Item(item_id=row["item_id"], video_id=row["video_id"], video_path=None, question="",
                            options=options, answer=row["gold"], type=row["type"],
                            answer_format=row.get("answer_format", "mcq"), answer_value=row.get("answer_value"),
                            unit=row.get("unit"), rule=row.get("rule"))
            row.update(_score_row(item, row["response"]))
            judged = (row.get("judge") or {}).get("letter")
            if row["invalid"] and judged:  # a cached judge verdict still stands for a reply the rules miss
                row.update({"letter": judged, "tier": "judge", "invalid": False, "correct": judged == item.answer})
            row["parser_version"] = PARSER_VERSION
        out.append(row)
    return out


def summarize_rows(rows: list[dict[str, Any]], *, resamples: int = DEFAULT_RESAMPLES,
                   seed: int = DEFAULT_SEED) -> Summary | None:
    """Statistics over the multiple-choice rows that got a reply (failed rows are reported, not scored;
    numeric and open rows are summarised by :func:`format_summaries`)."""
    scored = [r for r in rows if not r.get("error") and r.get("answer_format", "mcq") == "mcq"]
    if not scored:
        return None
    return summarize(correct=[bool(r["correct"]) for r in scored], video_ids=[r["video_id"] for r in scored],
                     types=[r["type"] for r in scored], n_options=[r["n_options"] for r in scored],
                     gold=[r["gold"] for r in scored], pred=[r["letter"] for r in scored],
                     tiers=[r["tier"] for r in scored], resamples=resamples, seed=seed,
                     base_ids=[r.get("base_id", r["item_id"]) for r in scored])


def format_summaries(rows: list[dict[str, Any]], *, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED) -> dict[str, dict[str, Any]]:
    """Per non-multiple-choice format: the mean score (MRA, exact match) with its 95% CI over videos, per type,
    the invalid rate, and for open answers the mean edit similarity."""
    out: dict[str, dict[str, Any]] = {}
    for fmt in ("numeric", "open"):
        scored = [r for r in rows if not r.get("error") and r.get("answer_format") == fmt]
        if not scored:
            continue
        scores = np.array([float(r["score"]) for r in scored])
        videos = [r["video_id"] for r in scored]
        types = [r["type"] for r in scored]
        micro, _per, _macro = cluster_bootstrap(scores, videos, types, resamples=resamples, seed=seed)
        lo, hi = np.percentile(micro, [2.5, 97.5]) if len(set(videos)) > 1 else (float("nan"), float("nan"))
        per_type = {}
        for name in sorted(set(types)):
            mask = np.array([t == name for t in types])
            per_type[name] = {"value": float(scores[mask].mean()), "n": int(mask.sum())}
        entry: dict[str, Any] = {"score": {"value": float(scores.mean()), "lo": float(lo), "hi": float(hi),
                                           "n": len(scored), "n_videos": len(set(videos))},
                                 "per_type": per_type,
                                 "invalid_rate": float(np.mean([bool(r["invalid"]) for r in scored]))}
        if fmt == "open":
            entry["edit_similarity"] = float(np.mean([float(r.get("edit_similarity") or 0.0) for r in scored]))
        out[fmt] = entry
    return out


def summary_json(summary: Summary | None, rows: list[dict[str, Any]]) -> dict[str, Any]:
    failures = Counter(r["error"]["reason"] for r in rows if r.get("error"))
    usage = Counter()
    for r in rows:
        usage.update({k: v for k, v in (r.get("usage") or {}).items() if isinstance(v, int)})
    out: dict[str, Any] = {"n_rows": len(rows), "n_scored": len(rows) - sum(failures.values()),
                           "failures": dict(failures), "usage_total": dict(usage)}
    if summary is not None:
        out.update(dataclasses.asdict(summary))
    formats = format_summaries(rows)
    if formats:
        out["formats"] = formats
    return out


def write_summary(run_dir: Path, *, resamples: int = DEFAULT_RESAMPLES) -> dict[str, Any]:
    rows = read_results(run_dir)
    data = summary_json(summarize_rows(rows, resamples=resamples), rows)
    atomic_write_text(Path(run_dir) / SUMMARY, json.dumps(data, indent=2, default=float) + "\n")
    return data


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(manifest, result rows) of a run directory."""
    return read_manifest(Path(run_dir)), read_results(Path(run_dir))

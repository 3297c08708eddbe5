"""``dsr pipeline run``: curate, extract and generate questions for a folder of videos, resumably.

Per video, a chain of two tasks runs on the chosen executor (:mod:`dsr.pipeline.executors`):
``curate`` (:func:`dsr.extract.curate.curate_video`), then — for kept clips — ``extract``
(:func:`dsr.extract.pipeline.extract_into`, which writes the record and its completion marker
atomically). The driver journals each finished chain (appended, flushed and fsynced) before it looks at
the next, so a run killed at any point resumes where it stopped: journaled videos are not curated again
and extracted videos are skipped by their markers. When every chain is done, the driver writes:

* ``curation.csv`` — the table ``dsr curate`` writes for the same videos and settings;
* ``records/`` — what ``dsr extract <kept videos> --out records`` writes (records, markers, report.json);
* ``qas.jsonl`` (or the ``qa_out`` name) — what ``dsr qa records/*.npz`` writes; question generation
  runs once over all records at the end, because it balances answers across the whole set;
* ``report.json`` — per-video status and reason, failures counted by reason, the executor, timings.

So the result equals running the three commands one after another (tested), on one core or a cluster.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dsr.atomic import atomic_write_text
from dsr.errors import DsrError
from dsr.extract.curate import CurateConfig, CurationRow, curate_video, reason_kind, write_curation_table
from dsr.extract.pipeline import (
    ExtractConfig,
    extract_into,
    find_videos,
    marker_path,
    record_id_for,
    summarize,
)
from dsr.pipeline.executors import Chain, Executor, LocalExecutor, Resources
from dsr.qa.rules import QAConfig

STATE_DIR = ".pipeline"


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of the three stages; a resumed run must use the same ones."""

    curate: CurateConfig = field(default_factory=CurateConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    qa: QAConfig = field(default_factory=QAConfig)
    per_video: int = 10
    seed: int = 0
    qa_out: str = "qas.jsonl"

    def settings(self) -> dict[str, Any]:
        return json.loads(json.dumps({"curate": asdict(self.curate), "extract": asdict(self.extract),
                                      "qa": self.qa.to_json(), "per_video": self.per_video, "seed": self.seed,
                                      "qa_out": self.qa_out}, default=str))


@dataclass
class PipelineReport:
    videos: int = 0
    kept: int = 0
    extracted: int = 0
    qas: int = 0
    by_stage_reason: Counter[str] = field(default_factory=Counter)
    resumed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"videos": self.videos, "kept": self.kept, "extracted": self.extracted, "qas": self.qas,
                "failures": dict(self.by_stage_reason.most_common()), "resumed": self.resumed,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}, "executor": self.executor,
                "items": self.items}

    @property
    def failed(self) -> int:
        return sum(self.by_stage_reason.values())


def extraction_resources(config: ExtractConfig) -> Resources:
    """The CPU default takes one core; a learned camera backend (π³) also takes a GPU."""
    return Resources(num_cpus=1.0, num_gpus=1.0 if "pi3" in config.camera_methods else 0.0)


# ---- the two steps (module-level: Ray ships them to workers by reference) ----------------------------


def curate_step(video: str, config: CurateConfig) -> dict[str, Any]:
    return asdict(curate_video(video, config))


def extract_step(video: str, curation: dict[str, Any], records_dir: str, config: ExtractConfig) -> dict[str, Any] | None:
    """Extract a kept clip (None for a dropped one); a video done before reads back its marker."""
    if not curation["keep"]:
        return None
    out = Path(records_dir)
    out.mkdir(parents=True, exist_ok=True)
    outcome = extract_into(video, out, config)
    if outcome is None:
        return json.loads(marker_path(out, record_id_for(video)).read_text())
    return outcome.summary()


# ---- the journal ------------------------------------------------------------------------------------


def _journal_path(out: Path) -> Path:
    return out / STATE_DIR / "journal.jsonl"


def _read_journal(path: Path, settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Finished chains by video; a torn last line (killed mid-write) is dropped and cut off."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if complete != data:
        path.write_bytes(complete)
    lines = complete.decode("utf-8").splitlines()
    if not lines:
        return {}
    if json.loads(lines[0]).get("settings") != settings:
        raise DsrError(f"{path.parent.parent}: holds a pipeline run with other settings; "
                       "rerun with the same options or use another --out")
    done = {}
    for line in lines[1:]:
        entry = json.loads(line)
        done[entry["video"]] = entry
    return done



def run_pipeline(inputs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                 config: PipelineConfig = PipelineConfig(), *, executor: Executor | None = None,
                 progress: Callable[[str, dict[str, Any], bool], None] | None = None) -> PipelineReport:
    """Run curate → extract per video on ``executor`` (default: serial, here), then questions; resumable.

    ``progress(video, journal entry, resumed)`` is called once per video.
    """
    from dsr.qa.run import generate_files, write_report_png

    executor = executor or LocalExecutor()
    out = Path(out_dir)
    videos = [str(v) for v in find_videos(inputs)]
    if not videos:
        raise DsrError("no video files found in the given inputs")
    records_dir = out / "records"
    settings = config.settings()
    journal = _journal_path(out)
    journal.parent.mkdir(parents=True, exist_ok=True)
    done = _read_journal(journal, settings)
    report = PipelineReport(videos=len(videos), executor=executor.describe())
    start = time.perf_counter()
    with open(journal, "a", encoding="utf-8") as log:
        if log.tell() == 0:
            log.write(json.dumps({"settings": settings}) + "\n")
        for v in videos:
            if v in done:
                report.resumed += 1
                if progress is not None:
                    progress(v, done[v], True)
        todo = [v for v in videos if v not in done]
        chains = [Chain(key=v, first=curate_step, first_args=(config.curate,), second=extract_step,
                        second_args=(str(records_dir), config.extract),
                        second_resources=extraction_resources(config.extract)) for v in todo]
        for video, curation, extraction in executor.run(chains):
            entry = {"video": video, "curation": curation, "extract": extraction}
            log.write(json.dumps(entry) + "\n")
            log.flush()
            os.fsync(log.fileno())
            done[video] = entry
            if progress is not None:
                progress(video, entry, False)
    report.seconds["curate+extract"] = time.perf_counter() - start

    rows = [CurationRow(**done[v]["curation"]) for v in videos]
    write_curation_table(rows, out / "curation.csv")
    records_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(records_dir / "report.json", json.dumps(summarize(records_dir), indent=1))
    for v in videos:
        entry = done[v]
        row, extraction = entry["curation"], entry["extract"]
        item: dict[str, Any] = {"video": v, "curation": row["reason"]}
        if not row["keep"]:
            report.by_stage_reason[f"curate: {reason_kind(row['reason'])}"] += 1
        else:
            report.kept += 1
            item["extract"] = f"{extraction['status']}: {extraction['reason']}"
            if extraction["status"] == "ok":
                report.extracted += 1
                item["record"] = str(Path("records") / f"{extraction['record_id']}.npz")
            else:
                report.by_stage_reason[f"extract {extraction['status']}: {extraction['reason'].split(':')[0]}"] += 1
        report.items.append(item)

    start = time.perf_counter()
    records = sorted(str(p) for p in records_dir.glob("*.npz"))
    if records:
        qa_report = generate_files(records, out / config.qa_out, config.qa, per_video=config.per_video,
                                   seed=config.seed)
        report.qas = sum(qa_report.made.values())
        write_report_png(qa_report.to_json(), str(out / config.qa_out) + ".report.png")
        for reason, n in qa_report.records_failed.items():
            report.by_stage_reason[f"qa: {reason}"] += n
    report.seconds["qa"] = time.perf_counter() - start
    atomic_write_text(out / "report.json", json.dumps(report.to_json(), indent=1))
    return report

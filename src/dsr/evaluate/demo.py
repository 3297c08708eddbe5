"""The offline evaluation step of ``make demo``: baselines and the oracle on our own QAs, then a report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dsr.evaluate.agreement import LabelCheck
from dsr.evaluate.datasets import load_dataset
from dsr.evaluate.models import create_model
from dsr.evaluate.report import write_report
from dsr.evaluate.run import RunConfig, run_eval

DEMO_MODELS = ("random", "always:A", "answer-prior", "text-prior", "oracle")
# numeric and open questions (issue 16): their blind baseline and the oracle
FREE_MODELS = ("type-prior", "oracle")


def run_demo_eval(qas: str | Path, out_dir: str | Path, *, progress: bool = True,
                  models: tuple[str, ...] = DEMO_MODELS, free_qas: Sequence[str | Path] = (),
                  label_checks: Sequence[LabelCheck] | None = None) -> tuple[Path, Path]:
    """Evaluate the offline baselines and the oracle on a QA export, and ``FREE_MODELS`` on each numeric or open
    file of ``free_qas``; returns (report.md, report.html) of all of them together.

    Runs go to ``out_dir/runs/<model>`` (``<model>-<file stem>`` for the free files; resumable), the report to
    ``out_dir/report``. No network. label_checks: the ground-truth vs extraction comparison
    (:mod:`dsr.evaluate.agreement`) to show.
    """
    out = Path(out_dir)
    run_dirs = []
    plans = [(qas, models, "")] + [(f, FREE_MODELS, f"-{Path(f).stem}") for f in free_qas]
    for path, specs, suffix in plans:
        ds = load_dataset(path)
        for spec in specs:
            run_dir = out / "runs" / (spec.replace(":", "-") + suffix)
            run_eval(ds, create_model(spec, items=ds.items), run_dir, RunConfig(), progress=progress)
            run_dirs.append(run_dir)
    return write_report(run_dirs, out / "report", label_checks=label_checks)

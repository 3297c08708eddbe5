"""Scene record → multiple-choice 4D questions with procedural answers (dsr-paper §7, §8).

* :mod:`dsr.qa.question_types` — the one table of question-type facts (rule, targets, frames, labels);
* :mod:`dsr.qa.rules` — the answer rules and wording (the only place they live) and ``QAConfig``;
* :mod:`dsr.qa.schema` — the typed :class:`QA` every writer serialises;
* :mod:`dsr.qa.query` — structured queries, per-frame quantities, ``answer(record, query)``, stability;
* :mod:`dsr.qa.templates` — question wording, object denotation, options and distractors;
* :mod:`dsr.qa.generate` — sampling template QAs from a record, the generation report;
* :mod:`dsr.qa.freeform` — free-form questions through an OpenAI-compatible endpoint;
* :mod:`dsr.qa.export` / :mod:`dsr.qa.run` — JSONL / DSR-Bench parquet / DSR-Train JSON, resumable runs.

See ``docs/qa.md`` for the normalisation, the frame policies and every choice the paper leaves open.
"""

from dsr.qa.generate import GenerationReport, generate_record_qas
from dsr.qa.query import Answer, Query, answer
from dsr.qa.question_types import (
           NON_TEMPLATE,
           QUESTION_TYPES,
           TYPE_LABELS,
           TYPES,
           QuestionType,
           question_type,
)
from dsr.qa.rules import QAConfig, make_config, parity_config
from dsr.qa.schema import QA

__all__ = ["NON_TEMPLATE", "QA", "QUESTION_TYPES", "TYPES", "TYPE_LABELS", "Answer", "GenerationReport", "QAConfig",
           "Query", "QuestionType", "answer", "generate_record_qas", "make_config", "parity_config", "question_type"]

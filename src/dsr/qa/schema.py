"""The typed QA: what ``dsr qa`` emits and every writer serialises (the contract is ``docs/qa.md``).

:class:`QA` is a frozen dataclass; :meth:`QA.to_json` gives the native JSON object (the JSONL line,
and the extra columns of the DSR-Bench parquet), :meth:`QA.from_json` reads one back, including
files written before the additive fields existed. Template and free-form QAs share the type; the
fields that only one of them has are ``None`` for the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from dsr.errors import DsrError
from dsr.qa.query import Query

LETTERS = ("A", "B", "C", "D")


class QASchemaError(DsrError):
    """A QA object that does not follow the export contract (one line naming the problem)."""


@dataclass(frozen=True)
class FrameRefs:
    """The frames a QA reads. indices: video frame numbers; timestamps_s: their times;
    record_indices: the scene record's sampled-frame indices ``t`` (what ``Query.frames`` holds)."""

    indices: tuple[int, ...]
    timestamps_s: tuple[float, ...]
    record_indices: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"indices": list(self.indices), "timestamps_s": list(self.timestamps_s),
                "record_indices": list(self.record_indices)}

    @staticmethod
    def from_json(obj: Mapping[str, Any]) -> FrameRefs:
        record = obj.get("record_indices", obj["indices"])
        return FrameRefs(indices=tuple(int(i) for i in obj["indices"]),
                         timestamps_s=tuple(float(t) for t in obj["timestamps_s"]),
                         record_indices=tuple(int(i) for i in record))


@dataclass(frozen=True)
class Quantity:
    """The per-frame quantity behind the answer, lengths divided by ``scale`` (unit "scene_scale").

    values: nested lists as exported ((F,), (F, 3), (F−1, 2) …; free-form: (objects, F, 3)).
    rule: the answer rule of a template QA; objects: the object ids of a free-form QA's positions.
    """

    name: str
    values: list[Any]
    scale: float
    unit: str = "scene_scale"
    rule: str | None = None
    objects: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "values": self.values}
        if self.objects is not None:
            out["objects"] = list(self.objects)
        out["unit"] = self.unit
        out["scale"] = self.scale
        if self.rule is not None:
            out["rule"] = self.rule
        return out

    @staticmethod
    def from_json(obj: Mapping[str, Any]) -> Quantity:
        objects = obj.get("objects")
        return Quantity(name=str(obj["name"]), values=obj["values"], scale=float(obj["scale"]),
                        unit=str(obj.get("unit", "scene_scale")), rule=obj.get("rule"),
                        objects=None if objects is None else tuple(objects))


@dataclass(frozen=True)
class Generator:
    """Provenance: package version, seed, the full ``QAConfig`` (``preset`` included) and, for
    free-form QAs, the LLM that wrote the question."""

    dsr_version: str
    seed: int
    config: dict[str, Any]
    llm_model: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dsr_version": self.dsr_version, "seed": self.seed, "config": self.config}
        if self.llm_model is not None:
            out["llm_model"] = self.llm_model
        return out

    @staticmethod
    def from_json(obj: Mapping[str, Any]) -> Generator:
        return Generator(dsr_version=str(obj["dsr_version"]), seed=int(obj["seed"]), config=dict(obj["config"]),
                         llm_model=obj.get("llm_model"))


@dataclass(frozen=True)
class Distractor:
    """Where a wrong option comes from (counterfactual distractors, docs/qa.md).

    letter: the option; kind: "other_object", "other_observer", "other_window", "other_time",
    "reversed", "mirrored", "edited" or "random" (the paper's random sequence); query: the real
    alternative whose true answer it is (None for transforms of the answer and random sequences).
    """

    letter: str
    kind: str
    query: Query | None = None

    def to_json(self) -> dict[str, Any]:
        return {"letter": self.letter, "kind": self.kind, "query": None if self.query is None else self.query.to_json()}

    @staticmethod
    def from_json(obj: Mapping[str, Any]) -> Distractor:
        q = obj.get("query")
        return Distractor(letter=str(obj["letter"]), kind=str(obj["kind"]), query=None if q is None else Query.from_json(q))


@dataclass(frozen=True)
class QA:
    """One multiple-choice question about one scene record.

    options: the four option texts in letter order A–D; answer: the correct letter.
    visible_until_s: a model may see only frames before this time (prediction QAs), else None.
    stability: fraction of perturbed re-derivations that keep the answer (None when not scored).
    geometric_check: a free-form QA's re-derivation verdict (None for template QAs).
    distractors: provenance of each wrong option (None for the paper's procedure and free-form QAs).
    """

    qa_id: str
    video_id: str
    video_path: str | None
    record_path: str | None
    type: str
    source: str
    question: str
    options: tuple[str, str, str, str]
    answer: str
    answer_text: str
    visible_until_s: float | None
    query: Query
    frames: FrameRefs
    quantity: Quantity
    stability: float | None
    generator: Generator
    geometric_check: dict[str, Any] | None = None
    distractors: tuple[Distractor, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.options) != len(LETTERS):
            raise QASchemaError(f"{self.qa_id}: a QA has {len(LETTERS)} options, got {len(self.options)}")
        if self.answer not in LETTERS:
            raise QASchemaError(f"{self.qa_id}: answer must be a letter A-D, got {self.answer!r}")
        if self.options[LETTERS.index(self.answer)] != self.answer_text:
            raise QASchemaError(f"{self.qa_id}: answer_text is not the text of option {self.answer}")

    @property
    def option_map(self) -> dict[str, str]:
        """letter → option text."""
        return dict(zip(LETTERS, self.options, strict=True))

    def with_answer_at(self, letter: str) -> QA:
        """The same QA with its correct option moved to ``letter`` (swapped with the option there)."""
        if letter == self.answer:
            return self
        i, j = LETTERS.index(self.answer), LETTERS.index(letter)
        options = list(self.options)
        options[i], options[j] = options[j], options[i]
        swap = {self.answer: letter, letter: self.answer}
        distractors = None if self.distractors is None else tuple(
            replace(d, letter=swap.get(d.letter, d.letter)) for d in self.distractors)
        return replace(self, options=tuple(options), answer=letter, distractors=distractors)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        """The native JSON object (``docs/qa.md``): the fields of ``QA_EXPORT.md`` plus our additions."""
        out: dict[str, Any] = {
            "qa_id": self.qa_id, "video_id": self.video_id, "video_path": self.video_path,
            "record_path": self.record_path, "type": self.type, "source": self.source, "question": self.question,
            "options": self.option_map, "answer": self.answer, "answer_text": self.answer_text,
            "visible_until_s": self.visible_until_s, "query": self.query.to_json(), "frames": self.frames.to_json(),
            "quantity": self.quantity.to_json(), "stability": self.stability, "generator": self.generator.to_json(),
        }
        if self.geometric_check is not None:
            out["geometric_check"] = self.geometric_check
        if self.distractors is not None:
            out["distractors"] = [d.to_json() for d in self.distractors]
        return out

    @staticmethod
    def from_json(obj: Mapping[str, Any]) -> QA:
        """A QA from its native JSON object; a one-line QASchemaError names what is missing or wrong."""
        try:
            opts = obj["options"]
            if isinstance(opts, Mapping):
                options = tuple(str(opts[x]) for x in LETTERS)
            else:
                options = tuple(str(o) for o in opts)
            distractors = obj.get("distractors")
            stab = obj.get("stability")
            until = obj.get("visible_until_s")
            return QA(
                qa_id=str(obj["qa_id"]), video_id=str(obj["video_id"]), video_path=obj.get("video_path"),
                record_path=obj.get("record_path"), type=str(obj["type"]), source=str(obj.get("source", "template")),
                question=str(obj["question"]), options=options, answer=str(obj["answer"]),  # type: ignore[arg-type]
                answer_text=str(obj["answer_text"]), visible_until_s=None if until is None else float(until),
                query=Query.from_json(obj["query"]), frames=FrameRefs.from_json(obj["frames"]),
                quantity=Quantity.from_json(obj["quantity"]), stability=None if stab is None else float(stab),
                generator=Generator.from_json(obj["generator"]), geometric_check=obj.get("geometric_check"),
                distractors=None if distractors is None else tuple(Distractor.from_json(d) for d in distractors))
        except QASchemaError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            where = obj.get("qa_id", "?") if isinstance(obj, Mapping) else "?"
            raise QASchemaError(f"QA {where}: not a QA object ({exc.__class__.__name__}: {exc})") from None


def as_qa(obj: QA | Mapping[str, Any]) -> QA:
    """A QA, or a native JSON object read as one."""
    return obj if isinstance(obj, QA) else QA.from_json(obj)


def as_qas(items: Sequence[QA | Mapping[str, Any]]) -> list[QA]:
    return [as_qa(x) for x in items]

"""Named evaluation protocols: the frames, the prompt and the answer extraction of a published setup.

Scores on spatial benchmarks fail to reproduce mostly because one of three things differs: how many frames
the model saw, the prompt, or how the reply was turned into a letter. A protocol fixes all three under one
name, and the run manifest records it, so two numbers can be compared only when their protocols match.

* ``paper`` — the DSR paper (``dsr-paper.md`` §11): 32 uniform frames, frame times stated for models without
  native time, the official prompt, the final second of direction-prediction items hidden. Parsed by our own
  letter parser (:mod:`dsr.evaluate.parse`).
* ``dsr-official`` — the authors' released VLMEvalKit fork: the whole video (no hidden second) at the model
  config's default 2 fps, no time labels, the official prompt, and Video-MME-style extraction (strip answer
  prefixes, "" when over 10 words without A-D, else the first A-D character: "Based on ..." reads as B).
* ``vlmevalkit-dsrbench`` and its ``-64frame``, ``-30frame`` and ``-1fps`` variants — upstream VLMEvalKit's
  ``DSRBench`` (``DSRBench_32frame`` is the base name; EASI's ``DSRBench_1fps``): the same prompt over the whole
  video, and the rule cascade of VLMEvalKit's spatial-bench extraction (its LLM judge is not run here).
* ``vlm4d`` — VLM4D's prompt ("{question}. Choose the closest answer from the following 4 candidates ...")
  over 32 uniform frames, parsed with the six answer regexes of the DSR authors' VLM4D/STI-Bench scripts
  (VLM4D's own scoring is an LLM judge only).

The parity parsers here emulate other harnesses for comparison; the project's scores use the one letter
parser. :func:`protocol_rescore` re-reads a run's replies with a protocol's parser and counts the items that
parse differently from ours.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsr.atomic import atomic_write_text
from dsr.errors import DsrError
from dsr.evaluate.parse import parse_letter
from dsr.evaluate.sampling import FramePolicy

# ---------------------------------------------------------------------------------------------- parsers

# Answer prefixes the Video-MME-style extraction removes before it looks for a letter.
_VIDEOMME_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer",
                      "The best option is", "The correct option is", "Best answer:", "Best option:",
                      "Answer:", "Option:")


def _letter_class(letters: Sequence[str]) -> str:
    return "[" + "".join(re.escape(k) for k in letters) + "]"


def videomme_letter(reply: str, letters: Sequence[str]) -> str | None:
    """Video-MME-style extraction (the DSR authors' harness): strip the answer prefixes; a text of more than
    10 words with no option letter gives nothing; otherwise the first option letter anywhere, capital or not
    part of a word ("Based on" gives B)."""
    text = reply.strip()
    for prefix in _VIDEOMME_PREFIXES:
        text = text.replace(prefix, "")
    found = re.search(_letter_class(letters), text)  # a long text without a letter gives nothing, too
    return found.group(0) if found else None


def _standalone(text: str, letters: Sequence[str]) -> list[str]:
    """Capital option letters that stand alone as tokens (not inside a word)."""
    return re.findall(rf"(?<![A-Za-z]){_letter_class(letters)}(?![A-Za-z])", text)


def _from_lines(lines: list[str], letters: Sequence[str]) -> str | None:
    """A lone-letter line, then an "A. ..." line, then a unique standalone capital letter (last lines first)."""
    cls = _letter_class(letters)
    for line in reversed(lines):
        if re.fullmatch(rf"\W*({cls})\W*", line):
            return re.search(cls, line).group(0)  # type: ignore[union-attr]
    for line in reversed(lines):
        hit = re.match(rf"\s*\(?({cls})[.):]\s", line + " ")
        if hit:
            return hit.group(1)
    found = set(_standalone("\n".join(lines), letters))
    return found.pop() if len(found) == 1 else None


def spatial_bench_letter(reply: str, letters: Sequence[str]) -> str | None:
    """VLMEvalKit's spatial-bench rule cascade (its LLM-judge step is not run): ``<answer>`` tags, a letter
    just before ``</answer>``/``</think>``, the last 6 lines after ``</think>``, "final answer: X" phrases,
    then a global fallback that accepts exactly one standalone capital letter outside option lines."""
    cls = _letter_class(letters)
    tagged = re.search(rf"<answer>\s*\(?({cls})\b", reply)
    if tagged:
        return tagged.group(1)
    tail = reply[-800:]
    before_close = re.findall(rf"({cls})\W{{0,3}}</(?:answer|think)>", tail)
    if before_close:
        return before_close[-1]
    after_think = reply.rsplit("</think>", 1)[-1]
    for scope in (after_think, reply):
        lines = [ln for ln in scope.strip().splitlines() if ln.strip()][-6:]
        letter = _from_lines(lines, letters)
        if letter:
            return letter
    phrases = re.findall(rf"(?i:final answer)\s*(?:is)?\s*[:：]?\s*\(?({cls})\b", reply)  # capitals only
    if phrases:
        return phrases[-1]
    body = "\n".join(ln for ln in reply.splitlines() if not re.match(rf"\s*\(?{cls}[.):]\s", ln))
    found = set(_standalone(body, letters))
    return found.pop() if len(found) == 1 else None


def regex6_letter(reply: str, letters: Sequence[str]) -> str | None:
    """The six answer regexes of the DSR authors' VLM4D / STI-Bench scripts, in order: "(X)", "Ans=X",
    "Answer: X", "Option X", "X is correct", a trailing "X."; else the reply's last character if it is a
    letter."""
    cls = _letter_class(letters)
    for pattern in (rf"\(({cls})\)", rf"Ans\s*=\s*({cls})", rf"Answer\s*:\s*({cls})", rf"Option\s+({cls})",
                    rf"\b({cls}) is correct", rf"\b({cls})\.\s*$"):
        hit = re.search(pattern, reply)
        if hit:
            return hit.group(1)
    text = reply.strip()
    return text[-1] if text and text[-1] in letters else None


_PARITY_PARSERS: dict[str, Callable[[str, Sequence[str]], str | None]] = {
    "videomme": videomme_letter,
    "spatial-bench": spatial_bench_letter,
    "regex6": regex6_letter,
}
PARSERS: tuple[str, ...] = ("dsr", *_PARITY_PARSERS)


def extract_letter(parser: str, reply: str | None, options: Mapping[str, str]) -> str | None:
    """The letter ``parser`` reads from ``reply`` (None: no answer, scored wrong)."""
    if not reply:
        return None
    if parser == "dsr":
        return parse_letter(reply, options).letter
    if parser not in _PARITY_PARSERS:
        raise DsrError(f"unknown answer parser {parser!r} (choose from {', '.join(PARSERS)})")
    return _PARITY_PARSERS[parser](reply, tuple(options))


# -------------------------------------------------------------------------------------------- protocols


@dataclass(frozen=True)
class EvalProtocol:
    """One published evaluation setup: frames, prompt and answer extraction, with where they come from."""

    name: str
    policy: FramePolicy
    prompt_style: str
    parser: str
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "frame_policy": self.policy.to_json(), "prompt_style": self.prompt_style,
                "parser": self.parser, "source": self.source}


def _vlmevalkit(name: str, source: str, **frames: Any) -> EvalProtocol:
    return EvalProtocol(name, FramePolicy(timestamps_in_prompt=False, serve_full_video=True, **frames), "dsr",
                        "spatial-bench", source)


PROTOCOLS: dict[str, EvalProtocol] = {p.name: p for p in (
    EvalProtocol("paper", FramePolicy(num_frames=32, timestamps_in_prompt=True), "dsr", "dsr",
                 "DSR paper §4/§11: 32 uniform frames, times stated, final second of *_dir_pred hidden"),
    EvalProtocol("dsr-official", FramePolicy(fps=2.0, timestamps_in_prompt=False, serve_full_video=True), "dsr",
                 "videomme", "DSR_Suite's VLMEvalKit fork: whole video at the model config's fps=2, "
                             "Video-MME-style extraction"),
    _vlmevalkit("vlmevalkit-dsrbench", "VLMEvalKit DSRBench (32 frames)", num_frames=32),
    _vlmevalkit("vlmevalkit-dsrbench-64frame", "VLMEvalKit DSRBench_64frame", num_frames=64),
    _vlmevalkit("vlmevalkit-dsrbench-30frame", "VLMEvalKit DSRBench_30frame", num_frames=30),
    _vlmevalkit("vlmevalkit-dsrbench-1fps", "VLMEvalKit / EASI DSRBench_1fps", fps=1.0),
    EvalProtocol("vlm4d", FramePolicy(num_frames=32, timestamps_in_prompt=False), "vlm4d", "regex6",
                 "VLM4D prompt; the DSR authors' VLM4D script's six answer regexes"),
)}


def get_protocol(name: str) -> EvalProtocol:
    if name not in PROTOCOLS:
        raise DsrError(f"unknown protocol {name!r} (choose from {', '.join(PROTOCOLS)})")
    return PROTOCOLS[name]


def protocol_policy(protocol: EvalProtocol, **overrides: Any) -> FramePolicy:
    """The protocol's frame policy with the options a user set explicitly (None = the protocol's)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if "fps" in given or "num_frames" in given:  # a frame count and a rate exclude each other
        given.setdefault("fps", None)
    return dataclasses.replace(protocol.policy, **given)


def protocol_record(name: str, policy: FramePolicy, prompt_style: str) -> dict[str, Any]:
    """What the run manifest records: the protocol, its parser, and every setting the run changed from it
    (a run with overrides is *not* that protocol, and its manifest says so)."""
    protocol = get_protocol(name)
    overrides = {k: v for k, v in policy.to_json().items() if protocol.policy.to_json().get(k) != v}
    if prompt_style != protocol.prompt_style:
        overrides["prompt_style"] = prompt_style
    return {"name": protocol.name, "parser": protocol.parser, "source": protocol.source, "overrides": overrides}


# ------------------------------------------------------------------------------------------- re-scoring


@dataclass(frozen=True)
class ProtocolRescore:
    """A run's replies read by a protocol's parser beside ours."""

    protocol: str
    parser: str
    n: int  # items with a reply
    correct_ours: int
    correct_theirs: int
    differ: int  # items whose letter differs between the two parsers
    examples: tuple[dict[str, Any], ...]  # the first differing items: id, reply, our letter, theirs, gold

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def rescore_rows(rows: Sequence[Mapping[str, Any]], protocol: EvalProtocol, *, keep: int = 20) -> ProtocolRescore:
    """Re-read every answered row with the protocol's parser and with ours."""
    n = ours = theirs = differ = 0
    examples: list[dict[str, Any]] = []
    for row in rows:
        if row.get("error") or row.get("response") is None or not row.get("options"):
            continue
        options = row["options"]
        n += 1
        mine = parse_letter(row["response"], options).letter
        other = extract_letter(protocol.parser, row["response"], options)
        ours += mine == row["gold"]
        theirs += other == row["gold"]
        if mine != other:
            differ += 1
            if len(examples) < keep:
                examples.append({"item_id": row["item_id"], "response": str(row["response"])[:300],
                                 "ours": mine, "theirs": other, "gold": row["gold"]})
    return ProtocolRescore(protocol.name, protocol.parser, n, ours, theirs, differ, tuple(examples))


def protocol_rescore(run_dir: str | Path, name: str) -> tuple[ProtocolRescore, Path]:
    """Re-score a run directory's replies with protocol ``name``'s parser; writes ``protocol-<name>.json``."""
    from dsr.evaluate.store import read_results

    protocol = get_protocol(name)
    result = rescore_rows(read_results(Path(run_dir)), protocol)
    path = Path(run_dir) / f"protocol-{name}.json"
    atomic_write_text(path, json.dumps(result.to_json(), indent=1) + "\n")
    return result, path

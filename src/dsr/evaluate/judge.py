"""The optional LLM judge: consulted only for replies the rule parser calls INVALID, pinned, cached.

Never on by default and never switched on by an environment variable (``evaluation.md`` §11: the
same command must give the same numbers on every machine). The judge model is named explicitly, its
identity and prompt version go into the run manifest, and its decisions are cached in
``judge_cache.jsonl`` keyed by (item id, sha256 of the reply, judge identity, prompt version), so a
resumed or re-scored run never asks twice. The judge's own reply goes through the same letter parser;
"NONE" (or anything unparseable) leaves the item INVALID.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsr.evaluate.base import Model, Request
from dsr.evaluate.datasets import Item
from dsr.evaluate.parse import parse_letter
from dsr.evaluate.prompt import Prompt

JUDGE_PROMPT_VERSION = "1"
JUDGE_PROMPT = (
    "You read another model's reply to a multiple-choice question and report which option it chose.\n"
    "Question: {question}\nOptions:\n{options}\nReply:\n\"\"\"\n{reply}\n\"\"\"\n"
    "Which option letter does the reply choose? Answer with only that letter. Answer NONE if the reply "
    "chooses no option, several options, is cut off before choosing, or refuses."
)


@dataclass
class Judge:
    """An LLM that maps an unparseable reply to a letter (or to nothing). ``cache_path``: JSONL cache."""

    model: Model
    cache_path: Path | None = None
    _cache: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _loaded: bool = field(default=False, repr=False)

    def identity(self) -> dict[str, Any]:
        return {"model": self.model.identity(), "prompt_version": JUDGE_PROMPT_VERSION, "used_on": "invalid only"}

    def _key(self, item_id: str, reply: str) -> str:
        ident = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(f"{item_id}\x00{reply}\x00{ident}".encode()).hexdigest()

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.cache_path is not None and self.cache_path.is_file():
            for line in self.cache_path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self._cache[entry["key"]] = entry
                except (json.JSONDecodeError, KeyError):
                    continue  # a torn last line after a crash

    def decide(self, item: Item, reply: str) -> tuple[str | None, str, bool]:
        """(letter or None, the judge's raw reply, whether it came from the cache)."""
        key = self._key(item.item_id, reply)
        with self._lock:
            self._load()
            hit = self._cache.get(key)
        if hit is not None:
            return hit["letter"], hit["raw"], True
        options = "\n".join(f"{k}. {v}" for k, v in item.options.items())
        text = JUDGE_PROMPT.format(question=item.question, options=options, reply=reply[-4000:])
        raw = self.model.generate(Request(item=item, prompt=Prompt(parts=(("text", text),), images=()))).text
        letter = parse_letter(raw, item.options).letter
        entry = {"key": key, "item_id": item.item_id, "letter": letter, "raw": raw}
        with self._lock:
            self._cache[key] = entry
            if self.cache_path is not None:
                with open(self.cache_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return letter, raw, False

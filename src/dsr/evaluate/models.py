"""Models under evaluation: one interface, several backends, baselines as first-class models.

A model turns a :class:`Request` (the item and its prompt) into a :class:`Reply` (raw text, token
usage, latency) or raises :class:`ModelError` with a short ``reason`` (recorded per item; transient
reasons are retried when the run resumes). ``identity()`` goes into the run manifest.

Backends, created by name with :func:`create_model` from the lazy table :data:`MODELS`:

* ``openai:<model>`` — any OpenAI-compatible chat-completions server (OpenAI, Gemini's compatible
  endpoint, vLLM, ``transformers serve``): frames as base64 JPEG ``image_url`` parts, or
  (``video_mode="video_url"``) the served frames as one mp4 ``video_url`` part; retries with
  exponential backoff on 429/5xx/connection errors; the API key is read from an environment variable
  (never stored);
* ``hf-qwen:<checkpoint dir>`` — a local Qwen2.5-VL or Qwen3-VL checkpoint through transformers
  (``dsr.evaluate.hf``; the family is read from the checkpoint's ``config.json``);
* ``random`` (seeded per item), ``always:<letter>``, ``answer-prior`` (most frequent gold letter per
  type), ``oracle`` (answers our own QAs from their scene record with ``dsr.qa``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib
import inspect
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dsr.errors import DsrError
from dsr.evaluate.base import Model, ModelContext, ModelError, Reply, Request
from dsr.evaluate.datasets import Item
from dsr.evaluate.prompt import Prompt

# How an OpenAI-compatible request carries the visuals: JPEG image_url parts, or one mp4 video_url part.
OPENAI_VIDEO_MODES = ("frames", "video_url")
OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT_S = 120.0  # per attempt; a 32-frame request takes seconds, a busy local server a minute
DEFAULT_MAX_RETRIES = 3


def _no_argument(kind: str, arg: str) -> None:
    if arg:
        raise DsrError(f"model {kind!r} takes no argument, got {kind}:{arg}")


# ---------------------------------------------------------------------------------------------- baselines


@dataclass
class RandomModel:
    """Uniform random letter, seeded per (seed, item id): the same item always gets the same letter."""

    seed: int = 0
    name: str = "random"
    uses_frames: bool = False

    @classmethod
    def from_spec(cls, arg: str, *, context: ModelContext) -> RandomModel:
        _no_argument("random", arg)
        return cls(seed=context.seed)

    def identity(self) -> dict[str, Any]:
        return {"backend": "baseline", "name": self.name, "seed": self.seed}

    def generate(self, request: Request) -> Reply:
        digest = hashlib.sha256(f"{self.seed}|{request.item.item_id}".encode()).digest()
        letters = request.item.letters
        return Reply(text=letters[int.from_bytes(digest[:8], "little") % len(letters)])


@dataclass
class AlwaysLetterModel:
    """Always answers ``letter`` (the letter-prior control)."""

    letter: str = "A"
    name: str = ""
    uses_frames: bool = False

    def __post_init__(self) -> None:
        self.letter = self.letter.upper()
        self.name = self.name or f"always-{self.letter}"

    @classmethod
    def from_spec(cls, arg: str, *, context: ModelContext) -> AlwaysLetterModel:
        if len(arg) != 1 or not arg.isalpha():
            raise DsrError(f"always:<letter> needs one letter, got always:{arg}")
        return cls(letter=arg)

    def identity(self) -> dict[str, Any]:
        return {"backend": "baseline", "name": self.name, "letter": self.letter}

    def generate(self, request: Request) -> Reply:
        return Reply(text=self.letter)


@dataclass
class AnswerPriorModel:
    """Answers the most frequent gold letter of the item's type (ties: alphabetical).

    The prior is fitted on ``fit_items`` — by default the evaluated set itself, which makes it an
    optimistic upper bound on what a letter prior can score (stated in the report).
    """

    fit_items: Sequence[Item] = ()
    name: str = "answer-prior"
    uses_frames: bool = False
    prior: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        by_type: dict[str, Counter[str]] = {}
        for it in self.fit_items:
            by_type.setdefault(it.type, Counter())[it.answer] += 1
        self.prior = {t: min(c, key=lambda k: (-c[k], k)) for t, c in by_type.items()}
        overall = Counter(it.answer for it in self.fit_items)
        self.prior["*"] = min(overall, key=lambda k: (-overall[k], k)) if overall else "A"

    @classmethod
    def from_spec(cls, arg: str, *, context: ModelContext) -> AnswerPriorModel:
        _no_argument("answer-prior", arg)
        return cls(fit_items=list(context.items))

    def identity(self) -> dict[str, Any]:
        return {"backend": "baseline", "name": self.name, "prior": dict(sorted(self.prior.items()))}

    def generate(self, request: Request) -> Reply:
        letter = self.prior.get(request.item.type, self.prior["*"])
        if letter not in request.item.options:
            letter = request.item.letters[0]
        return Reply(text=letter)


def _option_key(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass
class TextPriorModel:
    """Answers the option whose *text* was most often correct in ``fit_items`` (blind, text only).

    A control for answer-text shortcuts: procedural distractors can make some texts (e.g. "(1) Keep
    nearly constant.") almost always right. Rate per text = (correct + 1) / (shown + 2); ties go to the
    earlier letter. Fitted on the evaluated set itself by default, leaving each item's own options out
    (leave-one-out), or on another question file (``text-prior:<file>``, e.g. a training split).
    """

    fit_items: Sequence[Item] = ()
    leave_one_out: bool = True
    name: str = "text-prior"
    uses_frames: bool = False
    shown: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for it in self.fit_items:
            for letter, text in it.options.items():
                self.shown[_option_key(text)] += 1
                self.correct[_option_key(text)] += letter == it.answer

    @classmethod
    def from_spec(cls, arg: str, *, context: ModelContext) -> TextPriorModel:
        """``text-prior``: leave-one-out on the evaluated set; ``text-prior:<file>``: fitted on that file."""
        if not arg:
            return cls(fit_items=list(context.items))
        from dsr.evaluate.datasets import load_dataset

        return cls(fit_items=load_dataset(arg, check_videos=False).items, leave_one_out=False)

    def identity(self) -> dict[str, Any]:
        return {"backend": "baseline", "name": self.name, "fit_items": len(self.fit_items),
                "leave_one_out": self.leave_one_out}

    def generate(self, request: Request) -> Reply:
        item = request.item

        def rate(letter: str) -> float:
            key = _option_key(item.options[letter])
            shown, correct = self.shown[key], self.correct[key]
            if self.leave_one_out:
                shown -= 1
                correct -= letter == item.answer
            return (max(correct, 0) + 1) / (max(shown, 0) + 2)

        return Reply(text=min(item.letters, key=lambda k: (-rate(k), k)))


@dataclass
class OracleModel:
    """Answers our own template QAs by re-deriving them from the scene record (``dsr.qa.query.answer``),
    with the generator's own ``QAConfig``. An upper bound that checks the QA pipeline end to end: any
    item the oracle misses is a QA whose answer does not follow from its record.

    Items without a record or structured query (external benchmarks, free-form QAs) fail with reason
    ``no_record``.
    """

    name: str = "oracle"
    uses_frames: bool = False
    _records: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_spec(cls, arg: str, *, context: ModelContext) -> OracleModel:
        _no_argument("oracle", arg)
        return cls()

    def identity(self) -> dict[str, Any]:
        import dsr

        return {"backend": "baseline", "name": self.name, "answerer": "dsr.qa.query.answer",
                "dsr_version": dsr.__version__}

    def _geometry(self, path: str, config: Any) -> Any:
        from dsr.qa.query import Geometry
        from dsr.scene.io import read_record

        key = f"{path}|{config!r}"
        with self._lock:
            if key not in self._records:
                if len(self._records) > 8:
                    self._records.clear()
                self._records[key] = Geometry.from_record(read_record(path), config)
            return self._records[key]

    def generate(self, request: Request) -> Reply:
        item = request.item
        if not item.record_path or not item.query:
            raise ModelError("no_record", "the oracle needs a scene record and a structured query")
        from dsr.qa.query import Query, answer
        from dsr.qa.rules import QAConfig

        try:
            config = QAConfig(**item.qa_config) if item.qa_config else QAConfig()
            if item.answer_format == "numeric":  # the number recomputed from the record's geometry
                from dsr.qa.free_answer import recompute_value
                from dsr.scene.io import read_record

                value = recompute_value(read_record(item.record_path, masks=False), item.query, config)
                return Reply(text=f"{value!r} {item.unit or ''}".strip())
            result = answer(self._geometry(item.record_path, config), Query.from_json(item.query), config)
        except DsrError as exc:
            raise ModelError("oracle_failed", str(exc)) from None
        letter = next((k for k, v in item.options.items() if v == result.text), None)
        return Reply(text=letter or result.text)


@dataclass
class TypePriorModel:
    """The blind baseline of the non-multiple-choice formats: per question type, the mean number (numeric)
    or the most frequent state sequence (open) of ``fit_items``.

    Fitted on the evaluated set itself by default, leaving each item's own video out, or on another question
    file (``type-prior:<file>``, e.g. a training split). Multiple-choice items fail (``not_applicable``).
    """

    fit_items: Sequence[Item] = ()
    leave_video_out: bool = True
    name: str = "type-prior"
    uses_frames: bool = False
    values: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    texts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for it in self.fit_items:
            if it.answer_format == "numeric" and it.answer_value is not None:
                self.values.setdefault(it.type, []).append((it.video_id, float(it.answer_value)))
            elif it.answer_format == "open":
                self.texts.setdefault(it.type, []).append((it.video_id, it.answer))

    @classmethod
    def from_spec(cls, arg: str, *, context: ModelContext) -> TypePriorModel:
        """``type-prior``: leave-one-video-out on the evaluated set; ``type-prior:<file>``: fitted on that file."""
        if not arg:
            return cls(fit_items=list(context.items))
        from dsr.evaluate.datasets import load_dataset

        return cls(fit_items=load_dataset(arg, check_videos=False).items, leave_video_out=False)

    def identity(self) -> dict[str, Any]:
        return {"backend": "baseline", "name": self.name, "fit_items": len(self.fit_items),
                "leave_video_out": self.leave_video_out}

    def generate(self, request: Request) -> Reply:
        item = request.item
        if item.answer_format == "numeric":
            pool = [v for vid, v in self.values.get(item.type, []) if not (self.leave_video_out and vid == item.video_id)]
            if not pool:
                raise ModelError("no_prior", f"no other {item.type} item to average")
            return Reply(text=f"{sum(pool) / len(pool)!r} {item.unit or ''}".strip())
        if item.answer_format == "open":
            counts = Counter(t for vid, t in self.texts.get(item.type, [])
                             if not (self.leave_video_out and vid == item.video_id))
            if not counts:
                raise ModelError("no_prior", f"no other {item.type} item to count")
            return Reply(text=min(counts, key=lambda t: (-counts[t], t)))
        raise ModelError("not_applicable", "type-prior answers numeric and open items only")


# ---------------------------------------------------------------------------------------------- OpenAI API


@dataclass
class OpenAIChatModel:
    """An OpenAI-compatible ``/chat/completions`` endpoint.

    base_url: e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``.
    api_key_env: name of the environment variable holding the key (the key itself is never stored).
    timeout_s: the limit of each attempt's connect, write and read phases (httpx), seconds.
    max_retries: attempts after the first on 429, 5xx, timeouts and connection errors; backoff
    ``backoff_s · 2^k`` (± 25% jitter), or the server's ``Retry-After`` if it sends one (at most 60 s).
    The defaults (120 s, 3 retries) bound a hung endpoint to ~8 minutes per item; the harness's circuit
    breaker stops the run well before that adds up over many items.
    """

    model: str
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 64
    seed: int | None = 0
    image_detail: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_s: float = 0.5
    max_connections: int = 16
    video_mode: str = "frames"
    uses_frames: bool = True
    name: str = ""
    _client: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or self.model
        self.base_url = self.base_url.rstrip("/")
        if self.video_mode not in OPENAI_VIDEO_MODES:
            raise DsrError(f"openai video mode must be one of {', '.join(OPENAI_VIDEO_MODES)}, got {self.video_mode!r}")
        if not self.timeout_s > 0:
            raise DsrError(f"the request timeout must be > 0 seconds, got {self.timeout_s}")
        if self.max_retries < 0:
            raise DsrError(f"max_retries must be >= 0, got {self.max_retries}")

    @classmethod
    def from_spec(cls, arg: str, *, context: ModelContext, base_url: str = OPENAI_BASE_URL,
                  api_key_env: str = "OPENAI_API_KEY", temperature: float = 0.0, max_tokens: int = 64,
                  image_detail: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S, max_retries: int = DEFAULT_MAX_RETRIES,
                  backoff_s: float = 0.5, max_connections: int | None = None,
                  video_mode: str = "frames") -> OpenAIChatModel:
        """``openai:<model>``; the connection pool follows the harness's concurrency unless given."""
        if not arg:
            raise DsrError("openai:<model> needs a model name")
        return cls(model=arg, seed=context.seed, base_url=base_url, api_key_env=api_key_env,
                   temperature=temperature, max_tokens=max_tokens, image_detail=image_detail,
                   timeout_s=timeout_s, max_retries=max_retries, backoff_s=backoff_s,
                   max_connections=max_connections or context.concurrency, video_mode=video_mode)

    def identity(self) -> dict[str, Any]:
        ident = {"backend": "openai-compatible", "model": self.model, "base_url": self.base_url,
                 "api_key_env": self.api_key_env,
                 "decoding": {"temperature": self.temperature, "max_tokens": self.max_tokens,
                              "seed": self.seed, "n": 1},
                 "image_detail": self.image_detail}
        if self.video_mode != "frames":  # absent = frames, so runs made before the option still resume
            ident["input"] = self.video_mode
        return ident

    def _http(self) -> Any:
        import httpx

        with self._lock:
            if self._client is None:
                limits = httpx.Limits(max_connections=self.max_connections,
                                      max_keepalive_connections=self.max_connections)
                self._client = httpx.Client(timeout=self.timeout_s, limits=limits)
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def payload(self, prompt: Prompt) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for kind, value in prompt.parts:
            if kind == "text":
                content.append({"type": "text", "text": str(value)})
            else:
                url = "data:image/jpeg;base64," + base64.b64encode(prompt.images[int(value)]).decode()
                image: dict[str, Any] = {"url": url}
                if self.image_detail:
                    image["detail"] = self.image_detail
                content.append({"type": "image_url", "image_url": image})
        body: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": content}],
                                "temperature": self.temperature, "max_tokens": self.max_tokens, "n": 1}
        if self.seed is not None:
            body["seed"] = self.seed
        return body

    def video_payload(self, request: Request) -> dict[str, Any]:
        """The request with the served frames as one mp4 ``video_url`` part (a base64 data URL), then the
        prompt's text without time labels: the clip's own timeline (1 / median frame spacing) carries time.
        The frames go in the arm's order; the arms' time labels are those of the main arm."""
        from dsr.evaluate.prompt import text_without_frames
        from dsr.evaluate.sampling import clip_fps, encode_clip

        try:
            clip = encode_clip(request.prompt.images, clip_fps(request.timestamps_s))
        except (DsrError, OSError, ValueError) as exc:  # a frame PyAV or PIL cannot take: this item fails
            raise ModelError("clip_error", f"cannot encode the clip: {exc}") from None
        url = "data:video/mp4;base64," + base64.b64encode(clip).decode()
        content = [{"type": "video_url", "video_url": {"url": url}},
                   {"type": "text", "text": text_without_frames(request.item, request.prompt.style)}]
        body = self.payload(Prompt(parts=(), images=()))
        body["messages"] = [{"role": "user", "content": content}]
        return body

    def generate(self, request: Request) -> Reply:
        import httpx

        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env, "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if self.video_mode == "video_url" and request.prompt.images:
            body = self.video_payload(request)
        else:  # frames, or the blind arm (text only) in either mode
            body = self.payload(request.prompt)
        start = time.perf_counter()
        last = ModelError("server_error", "no attempt made")
        for attempt in range(self.max_retries + 1):
            wait: float | None = None
            try:
                resp = self._http().post(f"{self.base_url}/chat/completions", json=body, headers=headers)
            except httpx.TimeoutException as exc:
                last = ModelError("timeout", f"{exc.__class__.__name__}")
            except httpx.TransportError as exc:
                last = ModelError("connection_error", f"{exc.__class__.__name__}: {exc}")
            else:
                if resp.status_code == 200:
                    return self._reply(resp, time.perf_counter() - start)
                if resp.status_code == 429 or resp.status_code >= 500:
                    reason = "rate_limited" if resp.status_code == 429 else "server_error"
                    last = ModelError(reason, f"HTTP {resp.status_code}: {resp.text[:200]}")
                    retry_after = resp.headers.get("retry-after")
                    if retry_after:
                        try:
                            wait = min(float(retry_after), 60.0)
                        except ValueError:
                            wait = None
                else:  # 4xx other than 429: the request itself is wrong; retrying cannot help
                    raise ModelError("client_error", f"HTTP {resp.status_code}: {resp.text[:200]}")
            if attempt < self.max_retries:
                time.sleep(wait if wait is not None else self.backoff_s * 2**attempt * random.uniform(0.75, 1.25))
        raise last

    @staticmethod
    def _reply(resp: Any, latency_s: float) -> Reply:
        try:
            data = resp.json()
            message = data["choices"][0]["message"]
            text = message.get("content")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelError("bad_response", f"unexpected response body ({exc.__class__.__name__})") from None
        if isinstance(text, list):  # some servers return content parts
            text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
        if text is None:
            text = ""
        usage_raw = data.get("usage") or {}
        usage = {k: int(usage_raw[k]) for k in ("prompt_tokens", "completion_tokens")
                 if isinstance(usage_raw.get(k), int)}
        details = usage_raw.get("completion_tokens_details") or {}
        if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
            usage["reasoning_tokens"] = details["reasoning_tokens"]
        return Reply(text=str(text), usage=usage, latency_s=latency_s)


# ---------------------------------------------------------------------------------------------- adapters


@dataclass
class VideoBackendModel:
    """Adapts a native-video backend — an object with ``generate(frames, prompt, *, frame_interval_s)``
    returning text, plus ``name``, ``identity()`` — to the harness (e.g. ``dsr.gsm.eval_backend``).

    The backend gets the JPEG frames in the arm's order and the text prompt *without* time labels (it
    encodes time itself from ``frame_interval_s``, the median spacing of the served frames), as the
    paper does for the Qwen series. Calls are serialised (one model in memory).
    """

    backend: Any
    uses_frames: bool = True
    name: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or str(getattr(self.backend, "name", type(self.backend).__name__))

    def identity(self) -> dict[str, Any]:
        return {"backend": "video-backend", "name": self.name, **dict(self.backend.identity()),
                "time": "native (frame_interval_s)"}

    def generate(self, request: Request) -> Reply:
        from dsr.evaluate.prompt import text_without_frames
        from dsr.evaluate.sampling import median_spacing_s

        text = text_without_frames(request.item, request.prompt.style)
        interval = median_spacing_s(request.timestamps_s)
        start = time.perf_counter()
        with self._lock:
            reply = self.backend.generate(list(request.prompt.images), text, frame_interval_s=interval)
        return Reply(text=str(reply), latency_s=time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------- registry

# name → "module:attribute", imported only when that model is built (no torch for ``dsr eval run -m random``).
# The attribute is a class with ``from_spec(arg, *, context, **options)`` or a function of that shape.
MODELS: dict[str, str] = {
    "random": "dsr.evaluate.models:RandomModel",
    "always": "dsr.evaluate.models:AlwaysLetterModel",
    "answer-prior": "dsr.evaluate.models:AnswerPriorModel",
    "text-prior": "dsr.evaluate.models:TextPriorModel",
    "oracle": "dsr.evaluate.models:OracleModel",
    "type-prior": "dsr.evaluate.models:TypePriorModel",
    "openai": "dsr.evaluate.models:OpenAIChatModel",
    "hf-qwen": "dsr.evaluate.hf:QwenVLModel",
}
MODEL_SPECS = ("openai:<model>", "hf-qwen:<dir>", "random", "always:<letter>", "answer-prior",
               "text-prior[:<file>]", "type-prior[:<file>]", "oracle")


def model_factory(kind: str, table: Mapping[str, str] = MODELS) -> Callable[..., Model]:
    """The factory registered under ``kind`` in ``table``, imported now."""
    if kind not in table:
        raise DsrError(f"unknown model {kind!r}: use one of {', '.join(sorted(table))} "
                       f"(e.g. {', '.join(MODEL_SPECS)})")
    module_name, _, attr = table[kind].partition(":")
    target = getattr(importlib.import_module(module_name), attr)
    return target.from_spec if hasattr(target, "from_spec") else target


def _accepted_options(factory: Callable[..., Any]) -> set[str] | None:
    """Keyword options ``factory`` takes; None when it forwards any (``**fields``) to a dataclass."""
    params = inspect.signature(factory).parameters.values()
    names = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "context"}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        owner = getattr(factory, "__self__", None)
        if owner is None or not dataclasses.is_dataclass(owner):
            return None
        names |= {f.name for f in dataclasses.fields(owner) if f.init and not f.name.startswith("_")}
    return names


def create_model(spec: str, *, items: Sequence[Item] = (), seed: int = 0, concurrency: int = 8,
                 table: Mapping[str, str] = MODELS, **options: Any) -> Model:
    """Build a model from its name, ``kind[:arg]`` (``openai:gpt-4o``, ``hf-qwen:/ckpt``, ``always:B``,
    ``random``, ...), through the lazy ``table``.

    ``items`` fit the priors, ``concurrency`` sizes connection pools; ``options`` are the backend's
    own (``base_url``, ``max_tokens``, ...). An option the model does not take is an error, never
    silently ignored; None values count as not given.
    """
    kind, _, arg = spec.partition(":")
    factory = model_factory(kind, table)
    given = {k: v for k, v in options.items() if v is not None}
    accepted = _accepted_options(factory)
    if accepted is not None and (unknown := set(given) - accepted):
        raise DsrError(f"option(s) {', '.join(sorted(unknown))} do not apply to model {kind!r}"
                       + (f" (it takes: {', '.join(sorted(accepted))})" if accepted else ""))
    return factory(arg, context=ModelContext(items=tuple(items), seed=seed, concurrency=concurrency), **given)

"""The paper's Table 5 in miniature: does the GSM use geometry, on data where it must?

Rendered MuJoCo worlds give videos *and* their exact geometry. Each arm trains the same tiny Qwen2.5-VL (real
architecture, random initialisation, our model classes, HF ``Trainer`` through :func:`dsr.gsm.train.build_trainer`)
on the same questions from the same starting weights:

- ``baseline``: no training (the starting model);
- ``sft``: geometry off;
- ``addition``: per-patch geometry merged and *added* onto the vision tokens;
- ``gsm``: K geometry tokens selected by the two Q-Formers, after each video's vision tokens.

Geometry is the world's ground truth standing in for π³ (:mod:`dsr.gsm.groundtruth`: Fourier features of each
patch's world XYZ and depth plus the camera pose), so the experiment tests the mechanism, not π³. Questions are
a few geometry-dependent template types from :mod:`dsr.qa` (options from its answer-pool distractors, so option
texts alone say little) plus appearance-only questions ("what is the object at this box?") that need no geometry.
Scoring is by likelihood, never decoding: by default the model is trained to reply with the correct option's text
and each option's text is scored (summed log-probability of its tokens and the end of turn; the highest wins);
``answer_format="letter"`` trains and scores the letters instead (at this size and budget a letter reply stays at
chance: the model never learns to bind options to letters, see ``docs/bench-gsm.md``). Controls on the geometry arms:
geometry of another held-out video (``shuffled``) and all-zero geometry (``zeroed``).

Everything a run needs (frames, geometry features, questions) is built once into ``cache_dir`` and reused;
each (arm, seed) result is written atomically, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsr.atomic import atomic_write_text

LETTERS = ("A", "B", "C", "D")
KINDS = ("person", "robot", "ball", "box", "car")
APPEARANCE = "app_cls"
ARMS = ("baseline", "sft", "addition", "gsm")
CONTROLS = ("shuffled", "zeroed")


@dataclass(frozen=True)
class Table5Config:
    """Data, model and training settings. Defaults are the full run; :meth:`smoke` a few-minute one."""

    train_worlds: int = 150
    heldout_worlds: int = 30
    heldout_seed_offset: int = 100_000  # held-out worlds use seeds from here: no world is in both splits
    width: int = 112
    height: int = 112
    # 24-s generator-2 worlds (dynamics that produce every answer class), sampled at the 8 frames the model
    # sees (one every 3 s; the world is simulated at 200 Hz whatever the frame rate)
    fps: float = 1.0 / 3.0
    duration_s: float = 24.0
    num_objects: int = 3
    geometry_types: tuple[str, ...] = ("abs_dis", "abs_dir", "abs_spd_comp")
    geometry_per_world: int = 30
    appearance_per_world: int = 10  # 25 % of the questions
    # held-out worlds are asked more (scoring is cheap, worlds are the unit of the CIs' resampling)
    heldout_geometry_per_world: int = 45
    heldout_appearance_per_world: int = 15
    distractor_pool_prob: float = 1.0
    max_segments: int = 2
    qa_seed: int = 0
    # "text": the model answers with the correct option's text and is scored by the log-likelihood of each
    # option's text (+ end of turn); "letter": it answers with the letter and is scored by the letters'
    # log-likelihoods (the design; at this size and budget it stays at chance, docs/bench-gsm.md)
    answer_format: str = "text"
    # model
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    mlp: int = 128
    vision_hidden: int = 32
    vision_depth: int = 1
    num_queries: int = 8
    # training (the same for every arm)
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 1500
    batch: int = 16
    lr: float = 1e-3
    warmup_ratio: float = 0.05
    eval_batch: int = 32
    threads: int = 1  # torch threads; 2 oversubscribe a loaded machine (2 CPU-s a step instead of 0.14)

    @classmethod
    def smoke(cls) -> Table5Config:
        return cls(train_worlds=12, heldout_worlds=4, geometry_per_world=12, appearance_per_world=4,
                   heldout_geometry_per_world=12, heldout_appearance_per_world=4, steps=40, seeds=(0, 1, 2))

    def data_key(self) -> str:
        """Digest of what the cached inputs depend on."""
        keys = ("train_worlds", "heldout_worlds", "heldout_seed_offset", "width", "height", "fps", "duration_s",
                "num_objects", "geometry_types", "geometry_per_world", "appearance_per_world",
                "heldout_geometry_per_world", "heldout_appearance_per_world", "answer_format",
                "distractor_pool_prob", "max_segments", "qa_seed")
        blob = json.dumps({k: getattr(self, k) for k in keys}, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MiniQA:
    """A four-option question on one world."""

    qa_id: str
    world: str
    type: str
    question: str
    options: tuple[str, str, str, str]
    answer: str

    def prompt(self, answer_format: str = "text") -> str:
        options = "\n".join(f"{letter}. {text}" for letter, text in zip(LETTERS, self.options, strict=True))
        ask = "Answer with the option's letter." if answer_format == "letter" else "Answer with the option's text."
        return f"{self.question}\nOptions:\n{options}\n{ask}"

    @property
    def answer_text(self) -> str:
        return self.options[LETTERS.index(self.answer)]


@dataclass
class WorldInputs:
    """One world's cached model inputs: every frame (T, H, W, 3) uint8, geometry (T·gh·gw, C) float32."""

    world: str
    frames: np.ndarray
    features: np.ndarray
    interval_s: float


@dataclass
class Table5Data:
    train: list[MiniQA]
    heldout: list[MiniQA]
    inputs: dict[str, WorldInputs]
    render_seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)


# --- data -------------------------------------------------------------------------------------------------------


def world_config(cfg: Table5Config, seed: int) -> Any:
    from dsr.world import WorldConfig

    return WorldConfig(seed=seed, width=cfg.width, height=cfg.height, fps=cfg.fps, duration_s=cfg.duration_s,
                       num_objects=cfg.num_objects)


def qa_config(cfg: Table5Config) -> Any:
    from dsr.qa.rules import QAConfig

    return QAConfig(distractor_pool_prob=cfg.distractor_pool_prob, max_segments=cfg.max_segments, stability_k=0)


def world_inputs(cfg: Table5Config, seed: int, cache_dir: Path) -> tuple[WorldInputs, Any]:
    """Render world ``seed`` (reused when complete), decode its video once and compute its geometry features;
    cached in ``<cache_dir>/worlds/<seed>/inputs-f<features version>.npz`` (written atomically)."""
    from dsr.gsm.groundtruth import FEATURES_VERSION, geometry_features, render_depth
    from dsr.qa.query import scene_scale
    from dsr.video import read_frames
    from dsr.world import render_world

    out = cache_dir / "worlds" / str(seed)
    result = render_world(world_config(cfg, seed), out, progress=False)
    record = result.record
    cached = out / f"inputs-f{FEATURES_VERSION}.npz"
    if cached.is_file():
        with np.load(cached) as z:
            return WorldInputs(record.record_id, z["frames"], z["features"], float(z["interval_s"])), record
    n = record.video.num_frames
    frames = read_frames(result.video_path, list(range(n)))
    depth = render_depth(result.spec, range(n))
    features = geometry_features(depth, record.camera.K, record.camera.c2w, scene_scale(record, qa_config(cfg)))
    interval = float(np.mean(np.diff(record.timestamps_s)))
    tmp = out / f"inputs-f{FEATURES_VERSION}.tmp.npz"
    np.savez_compressed(tmp, frames=frames, features=features, interval_s=interval)
    os.replace(tmp, cached)
    return WorldInputs(record.record_id, frames, features, interval), record


def geometry_questions(record: Any, cfg: Table5Config, failures: dict[str, int], count: int) -> list[MiniQA]:
    from dsr.qa.generate import GenerationReport, generate_record_qas

    report = GenerationReport()
    qas = [MiniQA(q.qa_id, record.record_id, q.type, q.question, tuple(q.options), q.answer)
           for q in generate_record_qas(record, qa_config(cfg), per_video=count, seed=cfg.qa_seed,
                                        types=cfg.geometry_types, report=report)]
    for reason, count in report.failures.items():
        key = reason if isinstance(reason, str) else "/".join(map(str, reason))
        failures[key] = failures.get(key, 0) + count
    return qas


def appearance_questions(record: Any, cfg: Table5Config, count: int) -> list[MiniQA]:
    """"What is the object with bounding box coordinates [..] at t s?": the object's kind among four (the true
    one and three others, letter uniform). Answerable from appearance alone; kinds are sampled rarest-first so
    that no kind is a text-only favourite."""
    from dsr.qa.templates import box_text, fmt_time

    rng = random.Random(f"{cfg.qa_seed}/appearance/{record.record_id}")
    visible = [(o, t) for o in record.objects for t in np.flatnonzero(o.visible)]
    if not visible:
        return []
    out: list[MiniQA] = []
    used: set[tuple[str, int]] = set()
    for _ in range(count * 5):
        if len(out) >= count:
            break
        obj, t = visible[rng.randrange(len(visible))]
        if (obj.object_id, int(t)) in used or obj.class_phrase not in KINDS:
            continue
        used.add((obj.object_id, int(t)))
        box = box_text(obj.boxes_xyxy[t], record.video.width, record.video.height)
        others = rng.sample([k for k in KINDS if k != obj.class_phrase], 3)
        slot = rng.randrange(4)
        options = [*others[:slot], obj.class_phrase, *others[slot:]]
        question = f"What is the object with bounding box coordinates {box} at {fmt_time(record.timestamps_s[t])}s?"
        qa_id = f"{record.record_id}/{APPEARANCE}/{obj.object_id}/{int(t)}"
        out.append(MiniQA(qa_id, record.record_id, APPEARANCE, question, tuple(options), LETTERS[slot]))
    return out


def build_data(cfg: Table5Config, cache_dir: str | os.PathLike[str],
               progress: Callable[[str, int, int], None] | None = None) -> Table5Data:
    """Render (or reuse) every world, cache its inputs, and draw the questions of both splits."""
    import time

    cache = Path(cache_dir)
    train_seeds = list(range(cfg.train_worlds))
    held_seeds = [cfg.heldout_seed_offset + i for i in range(cfg.heldout_worlds)]
    inputs: dict[str, WorldInputs] = {}
    failures: dict[str, int] = {}
    splits: dict[str, list[MiniQA]] = {"train": [], "heldout": []}
    start = time.perf_counter()
    total = len(train_seeds) + len(held_seeds)
    for i, (split, seed) in enumerate([("train", s) for s in train_seeds] + [("heldout", s) for s in held_seeds]):
        world, record = world_inputs(cfg, seed, cache)
        inputs[world.world] = world
        held = split == "heldout"
        splits[split] += geometry_questions(
            record, cfg, failures, cfg.heldout_geometry_per_world if held else cfg.geometry_per_world)
        splits[split] += appearance_questions(
            record, cfg, cfg.heldout_appearance_per_world if held else cfg.appearance_per_world)
        if progress is not None:
            progress("worlds", i + 1, total)
    return Table5Data(splits["train"], splits["heldout"], inputs, time.perf_counter() - start, failures)


# --- tokenizer and samples ----------------------------------------------------------------------------------------


def all_texts(qas: Sequence[MiniQA]) -> list[str]:
    """Everything the tokenizer must cover: the chat rendering's words and every prompt and answer."""
    from dsr.gsm.processing import SYSTEM_PROMPT

    return ["system user assistant", SYSTEM_PROMPT, *LETTERS,
            "Answer with the option's letter.", "Answer with the option's text."] + [q.prompt() for q in qas]


def build_tokenizer(qas: Sequence[MiniQA]) -> Any:
    from dsr.gsm.tiny import word_tokenizer

    return word_tokenizer(all_texts(qas))


def encode(qa: MiniQA, tokenizer: Any, world: WorldInputs, patches: Any, grid: list[int], geometry_tokens: int,
           *, answer: str | None, answer_format: str = "text", geometry: Any = None) -> dict[str, Any]:
    """One model sample; ``answer`` is the supervised reply (None: a prompt to score), ``patches``/``grid`` the
    world's cached Qwen patch rows, ``geometry`` its per-patch features as a tensor (None for the arms without
    geometry)."""
    from dsr.gsm.processing import encode_conversation

    merged = grid[0] * grid[1] * grid[2] // 4
    sample = encode_conversation(tokenizer, "<video>\n" + qa.prompt(answer_format), answer, [merged],
                                 geometry_tokens=geometry_tokens)
    sample.update(pixel_values_videos=[patches], video_grid_thw=[grid], second_per_grid_ts=[2 * world.interval_s],
                  qa_id=qa.qa_id)
    if geometry is not None:
        sample["geometry_features"] = [geometry]
    return sample


def supervised_reply(qa: MiniQA, answer_format: str) -> str:
    return qa.answer if answer_format == "letter" else qa.answer_text


# --- models ------------------------------------------------------------------------------------------------------


def model_config(cfg: Table5Config, strategy: str, vocab_size: int) -> Any:
    from dsr.gsm.configuration import GSMQwen2_5_VLConfig
    from dsr.gsm.groundtruth import FEATURE_DIM

    head_dim = cfg.hidden // cfg.heads
    quarter = head_dim // 4
    section = [head_dim // 2 - 2 * quarter, quarter, quarter]  # t, h, w bands summing to head_dim / 2
    return GSMQwen2_5_VLConfig(
        text_config=dict(hidden_size=cfg.hidden, intermediate_size=cfg.mlp, num_hidden_layers=cfg.layers,
                         num_attention_heads=cfg.heads, num_key_value_heads=cfg.kv_heads, vocab_size=vocab_size,
                         max_position_embeddings=1024, rms_norm_eps=1e-6,
                         rope_parameters={"rope_type": "default", "mrope_section": section, "rope_theta": 10000.0},
                         bos_token_id=0, eos_token_id=1, pad_token_id=0),
        vision_config=dict(depth=cfg.vision_depth, hidden_size=cfg.vision_hidden, intermediate_size=2 * cfg.vision_hidden,
                           num_heads=4, out_hidden_size=cfg.hidden, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, window_size=56, fullatt_block_indexes=[0], tokens_per_second=2),
        vision_start_token_id=3, image_token_id=4, video_token_id=5, vision_end_token_id=6, tie_word_embeddings=True,
        gsm_strategy={"baseline": "none", "sft": "none"}.get(strategy, strategy), gsm_num_queries=cfg.num_queries,
        gsm_feature_source="precomputed", gsm_feature_dim=FEATURE_DIM)


def initial_model(cfg: Table5Config, strategy: str, seed: int, vocab_size: int) -> Any:
    """The arm's starting model. Every arm of a seed starts from the same weights: the full ``gsm`` model is
    built with the seed and each arm keeps the parts it has (the Qwen parts are identical across arms)."""
    import torch

    from dsr.gsm.modeling import GSMQwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    full = GSMQwen2_5_VLForConditionalGeneration(model_config(cfg, "gsm", vocab_size))
    if strategy == "gsm":
        return full
    model = GSMQwen2_5_VLForConditionalGeneration(model_config(cfg, strategy, vocab_size))
    state = full.state_dict()
    missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if k in model.state_dict()},
                                                strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return model


def train_arm(model: Any, samples: list[dict[str, Any]], cfg: Table5Config, seed: int, out_dir: Path,
              pad_id: int, callbacks: list | None = None) -> list[float]:
    """Train ``model`` in place with the project's recipe code (per-group AdamW, all groups at ``cfg.lr``,
    cosine, ViT frozen) through HF ``Trainer``; returns the logged losses."""
    from functools import partial

    from transformers.trainer_callback import PrinterCallback

    from dsr.gsm.processing import collate
    from dsr.gsm.train import TrainConfig, apply_freezing, build_trainer, training_arguments

    tcfg = TrainConfig(output_dir=str(out_dir), strategy="gsm", learning_rate=cfg.lr, merger_lr=cfg.lr,
                       gsm_lr=cfg.lr, vision_lr=cfg.lr, max_steps=cfg.steps, per_device_train_batch_size=cfg.batch,
                       gradient_accumulation_steps=1, warmup_ratio=cfg.warmup_ratio, use_cpu=True, seed=seed,
                       logging_steps=max(1, cfg.steps // 50), save_steps=10**9,
                       extra_training_args={"save_strategy": "no", "disable_tqdm": True, "data_seed": seed})
    apply_freezing(model, tcfg)
    model.train()
    trainer = build_trainer(tcfg, training_arguments(tcfg), model, samples, partial(collate, pad_id=pad_id),
                            callbacks)
    trainer.remove_callback(PrinterCallback)  # the losses are returned and stored, not printed
    trainer.train()
    model.eval()
    return [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]


def letter_scores(model: Any, samples: list[dict[str, Any]], letter_ids: Sequence[int], pad_id: int,
                  batch: int = 32) -> np.ndarray:
    """(N, 4) log-probabilities of the letters A–D as the first answer token of each sample (no labels)."""
    import torch

    from dsr.gsm.processing import collate

    out = []
    ids = torch.tensor(list(letter_ids))
    with torch.no_grad():
        for i in range(0, len(samples), batch):
            b = collate(samples[i:i + batch], pad_id)
            b.pop("labels")
            logits = model(**b).logits  # (B, L, V)
            last = b["attention_mask"].sum(-1) - 1
            logp = torch.log_softmax(logits[torch.arange(len(last)), last].float(), dim=-1)
            out.append(logp[:, ids].numpy())
    return np.concatenate(out) if out else np.zeros((0, 4))


def reply_logprobs(model: Any, samples: list[dict[str, Any]], pad_id: int, batch: int = 32) -> np.ndarray:
    """(N,) summed log-probability of each sample's supervised tokens (its reply and end of turn) given the
    rest: the score of one candidate answer."""
    import torch

    from dsr.gsm.processing import collate

    out = []
    with torch.no_grad():
        for i in range(0, len(samples), batch):
            b = collate(samples[i:i + batch], pad_id)
            labels = b.pop("labels")
            logits = model(**b).logits[:, :-1].float()  # (B, L-1, V): position t predicts token t+1
            target = labels[:, 1:]
            mask = target != -100
            logp = torch.log_softmax(logits, -1).gather(-1, target.clamp(min=0)[..., None])[..., 0]
            out.append((logp * mask).sum(-1).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def derangement(n: int, seed: int) -> list[int]:
    """A permutation with no fixed point (n ≥ 2): who gets whose geometry in the shuffled control."""
    rng = random.Random(seed)
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


# --- text-only probes ---------------------------------------------------------------------------------------------


def text_prior_accuracy(train: Sequence[MiniQA], heldout: Sequence[MiniQA]) -> np.ndarray:
    """Per held-out QA, whether ``dsr.evaluate``'s text-prior baseline (the option whose text was most often
    correct in training) picks the answer."""
    from dsr.evaluate.base import Request
    from dsr.evaluate.datasets import Item
    from dsr.evaluate.models import TextPriorModel
    from dsr.evaluate.prompt import build_prompt

    def item(q: MiniQA) -> Item:
        return Item(item_id=q.qa_id, video_id=q.world, video_path=None, question=q.question,
                    options=dict(zip(LETTERS, q.options, strict=True)), answer=q.answer, type=q.type)

    model = TextPriorModel(fit_items=[item(q) for q in train], leave_one_out=False)
    return np.array([model.generate(Request(item=it, prompt=build_prompt(it, (), ()))).text == q.answer
                     for q, it in ((q, item(q)) for q in heldout)])


def option_classifier_accuracy(qas: Sequence[MiniQA], folds: int = 5, seed: int = 0) -> np.ndarray:
    """Per QA, whether a blind classifier picks the answer, scored by grouped k-fold (no world in both folds):
    logistic regression on each option's words and word pairs (tagged by question type) and its segment count,
    the option with the highest score chosen. The question and options, never the video."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    vec = HashingVectorizer(n_features=2**16, ngram_range=(1, 2), token_pattern=r"[A-Za-z]+|\d|[|()]",
                            alternate_sign=False, norm="l2")
    texts, labels, groups = [], [], []
    for q in qas:
        for letter, text in zip(LETTERS, q.options, strict=True):
            texts.append(" ".join(f"{q.type}_{w}" for w in text.split()) + " " + text)
            labels.append(int(letter == q.answer))
            groups.append(q.world)
    x = hstack([vec.transform(texts), np.array([[t.count("(")] for t in texts], dtype=float)]).tocsr()
    y = np.array(labels)
    g = np.array(groups)
    correct = np.zeros(len(qas), dtype=bool)
    n_folds = min(folds, len(set(groups)))
    for train_rows, test_rows in GroupKFold(n_splits=n_folds).split(x, y, g):
        clf = LogisticRegression(max_iter=2000, C=1.0, random_state=seed).fit(x[train_rows], y[train_rows])
        scores = clf.decision_function(x[test_rows]).reshape(-1, 4)
        qa_rows = test_rows.reshape(-1, 4)[:, 0] // 4
        correct[qa_rows] = scores.argmax(1) == np.array([LETTERS.index(qas[i].answer) for i in qa_rows])
    return correct


# --- the experiment -------------------------------------------------------------------------------------------------


@dataclass
class ArmResult:
    arm: str
    seed: int
    correct: dict[str, list[bool]]  # condition ("main", "shuffled", "zeroed") → per held-out QA
    answer_logprob: list[float]  # log-probability of the correct letter / option text (main condition)
    losses: list[float]
    train_seconds: float
    eval_seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_arm(cfg: Table5Config, data: Table5Data, arm: str, seed: int, out_dir: Path,
            callbacks: list | None = None) -> ArmResult:
    """Train (unless ``baseline``) and score one arm with one seed; reuses ``<out_dir>/<arm>-seed<seed>.json``."""
    import time

    import torch

    from dsr.gsm.processing import VideoProcessing, frames_to_patches

    path = out_dir / f"{arm}-seed{seed}.json"
    if path.is_file():
        raw = json.loads(path.read_text())
        return ArmResult(**raw)
    torch.set_num_threads(cfg.threads)
    tok = build_tokenizer(data.train + data.heldout)
    pad_id = tok.pad_token_id
    letters = tok.convert_tokens_to_ids(list(LETTERS))
    model = initial_model(cfg, arm, seed, len(tok))
    uses_geometry = arm in ("addition", "gsm")
    k = cfg.num_queries if arm == "gsm" else 0
    video_cfg = VideoProcessing(num_frames=len(next(iter(data.inputs.values())).frames), max_pixels=10**6)
    patches = {w: frames_to_patches(inp.frames, video_cfg) for w, inp in data.inputs.items()}
    geometry = {w: torch.from_numpy(inp.features) for w, inp in data.inputs.items()}

    fmt = cfg.answer_format

    def samples(qas: Sequence[MiniQA], replies: Sequence[str | None],
                geo: dict[str, Any] | None) -> list[dict[str, Any]]:
        return [encode(q, tok, data.inputs[q.world], patches[q.world][0], list(patches[q.world][1]), k,
                       answer=r, answer_format=fmt, geometry=None if geo is None else geo[q.world])
                for q, r in zip(qas, replies, strict=True)]

    losses: list[float] = []
    t0 = time.perf_counter()
    if arm != "baseline":
        work = out_dir / f"tmp-{arm}-seed{seed}"
        train_samples = samples(data.train, [supervised_reply(q, fmt) for q in data.train],
                                geometry if uses_geometry else None)
        losses = train_arm(model, train_samples, cfg, seed, work, pad_id, callbacks)
        shutil.rmtree(work, ignore_errors=True)
    t1 = time.perf_counter()
    conditions: dict[str, dict[str, Any] | None] = {"main": geometry if uses_geometry else None}
    if uses_geometry:
        worlds = sorted({q.world for q in data.heldout})
        perm = derangement(len(worlds), seed=1234)
        conditions["shuffled"] = {w: geometry[worlds[perm[i]]] for i, w in enumerate(worlds)}
        conditions["zeroed"] = {w: torch.zeros_like(geometry[w]) for w in worlds}
    correct: dict[str, list[bool]] = {}
    answer_logprob: list[float] = []
    gold = np.array([LETTERS.index(q.answer) for q in data.heldout])
    held = data.heldout
    for name, geo in conditions.items():
        if fmt == "letter":
            scores = letter_scores(model, samples(held, [None] * len(held), geo), letters, pad_id, cfg.eval_batch)
        else:  # each option's text as the reply, scored; QA i's four candidates are rows 4i..4i+3
            cands = [q for q in held for _ in LETTERS]
            replies = [text for q in held for text in q.options]
            scores = reply_logprobs(model, samples(cands, replies, geo), pad_id, cfg.eval_batch).reshape(-1, 4)
        correct[name] = (scores.argmax(1) == gold).tolist()
        if name == "main":
            answer_logprob = scores[np.arange(len(gold)), gold].tolist()
    result = ArmResult(arm, seed, correct, answer_logprob, losses, t1 - t0, time.perf_counter() - t1)
    atomic_write_text(path, json.dumps(result.to_json()))
    return result

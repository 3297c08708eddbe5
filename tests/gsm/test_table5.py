"""The miniature Table 5's parts: ground-truth geometry features, questions, tokenizer coverage, shared starting
weights, letter scoring and the blind probes (the full experiment is ``benchmarks/gsm_table5.py``)."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsr.gsm.groundtruth import FEATURE_DIM, FREQUENCIES, fourier, geometry_features, patch_points
from dsr.gsm.table5 import (
    APPEARANCE,
    ARMS,
    KINDS,
    LETTERS,
    MiniQA,
    Table5Config,
    all_texts,
    build_data,
    build_tokenizer,
    derangement,
    encode,
    initial_model,
    letter_scores,
    option_classifier_accuracy,
    reply_logprobs,
)

pytest.importorskip("mujoco")
os.environ.setdefault("MUJOCO_GL", "egl")

MICRO = replace(Table5Config.smoke(), train_worlds=2, heldout_worlds=1, geometry_per_world=8,
                appearance_per_world=3, heldout_geometry_per_world=8, heldout_appearance_per_world=3, hidden=32,
                mlp=64, num_queries=4)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_data(MICRO, tmp_path_factory.mktemp("table5"))


def test_tokenizer_covers_every_question_without_unk(data: Any) -> None:
    from dsr.gsm.tiny import tiny_tokenizer, unknown_tokens

    qas = data.train + data.heldout
    assert {q.type for q in qas} == {*MICRO.geometry_types, APPEARANCE}
    texts = all_texts(qas)
    tok = build_tokenizer(qas)
    assert unknown_tokens(tok, texts) == 0
    assert unknown_tokens(tiny_tokenizer(), texts) > 0  # the fixed tiny vocabulary did not cover these
    assert unknown_tokens(tok, ["zebra crossing xylophone"]) == 3  # words never seen do become <unk>
    ids = tok.encode("[103,7,111,54] at 12.5s", add_special_tokens=False)
    assert tok.convert_ids_to_tokens(ids)[:4] == ["[", "1", "0", "3"]  # every digit is its own token


def test_questions_are_well_formed(data: Any) -> None:
    for q in data.train + data.heldout:
        assert len(set(q.options)) == 4 and q.answer in LETTERS
        assert q.world in data.inputs
    apps = [q for q in data.train + data.heldout if q.type == APPEARANCE]
    assert apps
    for q in apps:
        answer = q.options[LETTERS.index(q.answer)]
        assert answer in KINDS and set(q.options) <= set(KINDS)
        assert q.question.startswith("What is the object with bounding box coordinates [")
    assert {q.world for q in data.train}.isdisjoint({q.world for q in data.heldout})


def test_geometry_features_put_objects_where_the_record_has_them(tmp_path: Path) -> None:
    """The pixel under an object's projected centre lifts (``patch_points`` with one-pixel patches) to a world
    point on that object's surface: the camera conventions (OpenCV c2w, pixel centres at integers) and the depth
    units agree with the record; 14-px patches give the (gh, gw) grid."""
    from dsr.gsm.groundtruth import render_depth
    from dsr.gsm.table5 import world_config
    from dsr.scene.rle import rle_decode
    from dsr.world import render_world

    result = render_world(world_config(replace(MICRO, width=224, height=224), 7), tmp_path / "w", progress=False)
    rec = result.record
    depth = render_depth(result.spec, range(rec.video.num_frames))
    points, d = patch_points(depth, rec.camera.K, rec.camera.c2w)
    assert points.shape == (8, 16, 16, 3) and d.shape == (8, 16, 16)
    pixels, _ = patch_points(depth, rec.camera.K, rec.camera.c2w, patch=1)
    checked = 0
    for obj, spec_obj in zip(rec.objects, result.spec.objects, strict=True):
        for t in np.flatnonzero(obj.visible):
            cam = obj.centers_cam[t]
            u, v = (rec.camera.K[t] @ cam)[:2] / cam[2]
            i, j = round(v), round(u)
            if not (0 <= i < 224 and 0 <= j < 224) or obj.masks is None:
                continue
            mask = rle_decode(obj.masks.counts[obj.masks.offsets[t]:obj.masks.offsets[t + 1]], 224, 224)
            if not mask[i, j]:
                continue  # the centre's pixel shows something in front of the object
            dist = np.linalg.norm(pixels[t, i, j] - obj.centers_world[t])
            assert dist < 1.75 * float(np.max(spec_obj.size)), (obj.object_id, t, dist)  # √3: a box corner
            checked += 1
    assert checked > 0
    feats = geometry_features(depth, rec.camera.K, rec.camera.c2w, scale=2.0)
    assert feats.shape == (8 * 256, FEATURE_DIM) and feats.dtype == np.float32 and np.isfinite(feats).all()
    # the last 12 columns are the frame's camera pose, the same for every patch of a frame
    cam_cols = feats.reshape(8, 256, FEATURE_DIM)[..., -12:]
    assert np.allclose(cam_cols, cam_cols[:, :1]) and np.allclose(cam_cols[:, 0, :3], rec.camera.c2w[:, :3, 3] / 2)


def test_patch_points_golden() -> None:
    """A camera 2 m above the origin looking straight down (OpenCV: z forward = world −z) at a floor 2 m away:
    each patch centre lifts to (x, y) = ((u − cx)·2/f, −(v − cy)·2/f) on the floor."""
    f, size = 50.0, 28
    K = np.array([[[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]]])
    c2w = np.eye(4)[None].copy()
    c2w[0, :3, :3] = np.diag([1.0, -1.0, -1.0])  # x right, y down → world −y, z forward → world −z
    c2w[0, 2, 3] = 2.0
    depth = np.full((1, size, size), 2.0)
    depth[0, :5, :5] = 1.5  # a small near object in patch (0, 0): 25 of its 196 pixels
    points, d = patch_points(depth, K, c2w)
    assert d[0, 0, 0] == 1.5 and np.allclose(d[0].ravel()[1:], 2.0)  # the nearest surface, not the median
    depth[0, :5, :5] = 2.0
    points, d = patch_points(depth, K, c2w)
    c = (size - 1) / 2
    for i, j in [(0, 0), (1, 0), (1, 1)]:
        u, v = j * 14 + 6.5, i * 14 + 6.5
        np.testing.assert_allclose(points[0, i, j], [(u - c) * 2 / f, -(v - c) * 2 / f, 0.0], atol=1e-9)


def test_fourier_features_golden() -> None:
    out = fourier(np.array([[0.25, -1.0]]))
    assert out.shape == (1, 2 * 2 * len(FREQUENCIES))
    # value 0.25 at frequency 1 (index 2): sin(2π·0.25) = 1, cos = 0
    k = FREQUENCIES.index(1.0)
    assert math.isclose(out[0, k], 1.0, abs_tol=1e-12) and math.isclose(out[0, len(FREQUENCIES) + k], 0.0,
                                                                        abs_tol=1e-12)


def test_arms_start_from_the_same_weights() -> None:
    models = {arm: initial_model(MICRO, arm, seed=3, vocab_size=50) for arm in ARMS}
    ref = models["gsm"].state_dict()
    for arm, model in models.items():
        state = model.state_dict()
        assert set(state) <= set(ref)
        assert all(torch.equal(v, ref[k]) for k, v in state.items()), arm
    assert not hasattr(models["sft"].model, "geometry_merger") and hasattr(models["addition"].model,
                                                                           "geometry_merger")
    other = initial_model(MICRO, "sft", seed=4, vocab_size=50).state_dict()
    assert not all(torch.equal(v, other[k]) for k, v in models["sft"].state_dict().items())


def test_letter_scores_are_the_first_answer_token_log_probabilities(data: Any) -> None:
    from dsr.gsm.processing import VideoProcessing, collate, frames_to_patches

    tok = build_tokenizer(data.train + data.heldout)
    model = initial_model(MICRO, "gsm", seed=0, vocab_size=len(tok)).eval()
    qas = data.heldout[:3]
    samples = []
    for q in qas:
        world = data.inputs[q.world]
        rows, grid = frames_to_patches(world.frames, VideoProcessing(num_frames=8))
        samples.append(encode(q, tok, world, rows, list(grid), MICRO.num_queries, answer=None,
                              answer_format="letter", geometry=torch.from_numpy(world.features)))
    letters = tok.convert_tokens_to_ids(list(LETTERS))
    scores = letter_scores(model, samples, letters, tok.pad_token_id, batch=2)  # padded batches
    assert scores.shape == (3, 4)
    for i, s in enumerate(samples):  # one at a time, no padding
        with torch.no_grad():
            b = collate([s], tok.pad_token_id)
            b.pop("labels")
            logp = torch.log_softmax(model(**b).logits[0, -1], -1)[letters]
        np.testing.assert_allclose(scores[i], logp.numpy(), atol=1e-5)


def test_reply_scores_are_the_summed_log_probabilities_of_the_reply(data: Any) -> None:
    """An option's score is the log-probability of its text and end of turn: −(mean token loss × tokens), the
    model's own loss on that reply; padding in a batch changes nothing."""
    from dsr.gsm.processing import VideoProcessing, collate, frames_to_patches

    tok = build_tokenizer(data.train + data.heldout)
    model = initial_model(MICRO, "addition", seed=1, vocab_size=len(tok)).eval()
    q = next(q for q in data.heldout if q.type != APPEARANCE)
    world = data.inputs[q.world]
    rows, grid = frames_to_patches(world.frames, VideoProcessing(num_frames=8))
    geo = torch.from_numpy(world.features)
    samples = [encode(q, tok, world, rows, list(grid), 0, answer=text, geometry=geo) for text in q.options]
    scores = reply_logprobs(model, samples, tok.pad_token_id, batch=4)  # options of different lengths, padded
    for sample, score in zip(samples, scores, strict=True):
        n = sum(label != -100 for label in sample["labels"])
        assert n == len(tok.encode(q.options[samples.index(sample)], add_special_tokens=False)) + 1  # + <|im_end|>
        with torch.no_grad():
            loss = model(**collate([sample], tok.pad_token_id)).loss
        assert math.isclose(score, -float(loss) * n, rel_tol=1e-4)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 40), seed=st.integers(0, 10_000))
def test_derangement_moves_every_world(n: int, seed: int) -> None:
    perm = derangement(n, seed)
    assert sorted(perm) == list(range(n)) and all(i != p for i, p in enumerate(perm))


def test_option_classifier_finds_a_planted_shortcut_and_nothing_else() -> None:
    rng = np.random.default_rng(0)
    words = ["Become larger.", "Become smaller.", "Keep nearly constant.", "Nearly the same."]

    def qas(tell: bool) -> list[MiniQA]:
        out = []
        for i in range(400):
            texts = list(rng.permutation(words))
            answer = int(rng.integers(4))
            if tell:  # the answer always reads "(1) Become larger."
                j = texts.index("Become larger.")
                texts[j], texts[answer] = texts[answer], texts[j]
            out.append(MiniQA(f"q{i}", f"w{i // 10}", "abs_dis", "q?", tuple(f"(1) {t}" for t in texts),
                              LETTERS[answer]))
        return out

    assert option_classifier_accuracy(qas(True)).mean() > 0.95
    assert abs(option_classifier_accuracy(qas(False)).mean() - 0.25) < 0.07

"""Golden strings: the 12 question wordings (§7.2) with their object denotations (§7.3)."""

from __future__ import annotations

import numpy as np
import pytest

from dsr.qa.generate import render_question
from dsr.qa.query import QAError, Query
from dsr.qa.rules import QAConfig, parity_config
from dsr.qa.templates import box_text
from dsr.scene.record import SceneRecord

from .conftest import make_record

N = 10  # frames at 2 fps: t = 0.0, 0.5, ..., 4.5 s


@pytest.fixture(scope="module")
def tiny() -> SceneRecord:
    f = np.arange(N)[:, None]
    return make_record(N, fps=2.0, force_visible=True, objects={
        "p": {"class": "soccer player", "agent": True, "centers": np.tile([1.0, 0.5, 0.9], (N, 1)),
              "yaw": np.zeros(N), "boxes": np.tile([10.4, 20.9, 100.2, 200.7], (N, 1))},
        "t": {"class": "palm tree", "centers": np.tile([2.0, -1.0, 1.0], (N, 1)),
              "boxes": np.hstack([300 + f, 40 + 0 * f, 350.99 + f, 180 + 0 * f])},
    })


P0 = "soccer player with initial bounding box coordinates [10,20,100,200]"
T2 = "palm tree with initial bounding box coordinates [302,40,352,180]"
INTERVAL = (2, 3, 4, 5, 6)  # 1.0 s → 3.0 s

GOLDEN = [
    ("rel_dis", "camera", ("p", "t"), INTERVAL, None,
     f"Between 1.0s and 3.0s, following the perspective of camera, how does the distance between {P0} and {T2} change?"),
    ("rel_dir", "p", ("camera", "t"), INTERVAL, None,
     f"Between 1.0s and 3.0s, following the perspective of {P0}, how does the direction of camera to {T2} change?"),
    ("rel_ori", "camera", ("p",), INTERVAL, None,
     f"Between 1.0s and 3.0s, following the perspective of camera, how does the orientation of {P0} change?"),
    ("rel_spd", "p", ("t",), INTERVAL, None,
     f"Between 1.0s and 3.0s, following the perspective of {P0}, how does the speed of {T2} change?"),
    ("rel_spd_comp", "camera", ("t", "p"), INTERVAL, None,
     f"Between 1.0s and 3.0s, following the perspective of camera, compare the speed between {T2} and {P0}."),
    ("rel_dir_pred", "p", ("t",), (7, 9), None,
     "Following the perspective of soccer player with final bounding box coordinates [10,20,100,200], "
     "predict the moving direction of palm tree with final bounding box coordinates [307,40,357,180]."),
    ("abs_dis", "p", ("camera", "t"), INTERVAL, 7,
     "Between 1.0s and 3.0s, from the perspective of soccer player with bounding box coordinates "
     f"[10,20,100,200] at 3.5s, how does the distance between camera and {T2} change?"),
    ("abs_dir", "camera", ("t", "p"), INTERVAL, 0,
     f"Between 1.0s and 3.0s, from the perspective of camera at 0.0s, how does the direction of {T2} to {P0} change?"),
    ("abs_ori", "camera", ("p",), INTERVAL, 9,
     f"Between 1.0s and 3.0s, from the perspective of camera at 4.5s, how does the orientation of {P0} change?"),
    ("abs_spd", "camera", ("p",), INTERVAL, 1,
     f"Between 1.0s and 3.0s, from the perspective of camera at 0.5s, how does the speed of {P0} change?"),
    ("abs_spd_comp", "p", ("camera", "t"), INTERVAL, 3,
     "Between 1.0s and 3.0s, from the perspective of soccer player with bounding box coordinates [10,20,100,200] "
     f"at 1.5s, compare the speed between camera and {T2}."),
    ("abs_dir_pred", "camera", ("t",), (7, 9), 4,
     "From the perspective of camera at 2.0s, predict the moving direction of palm tree with final bounding box "
     "coordinates [307,40,357,180]."),
]


def test_golden_covers_all_types() -> None:
    from dsr.qa.query import QUESTION_TYPES

    assert sorted(g[0] for g in GOLDEN) == sorted(QUESTION_TYPES)


@pytest.mark.parametrize(("qtype", "observer", "targets", "frames", "t_v", "expected"), GOLDEN,
                         ids=[g[0] for g in GOLDEN])
def test_question_wording(tiny: SceneRecord, qtype: str, observer: str, targets: tuple[str, ...],
                          frames: tuple[int, ...], t_v: int | None, expected: str) -> None:
    query = Query(type=qtype, observer=observer, targets=targets, frames=frames, t_v=t_v)
    assert render_question(tiny, query, QAConfig()) == expected


@pytest.mark.parametrize("qtype", ["rel_dir_pred", "abs_dir_pred"])
def test_prediction_punctuation_parity(tiny: SceneRecord, qtype: str) -> None:
    row = next(g for g in GOLDEN if g[0] == qtype)
    query = Query(type=qtype, observer=row[1], targets=row[2], frames=row[3], t_v=row[4])
    assert render_question(tiny, query, parity_config()) == row[5][:-1]  # official code: no trailing "."


def test_times_use_one_decimal() -> None:
    rec = make_record(8, fps=3.0, force_visible=True,
                      objects={"b": {"class": "ball", "centers": np.tile([1.0, 0.0, 0.5], (8, 1))}})
    q = Query(type="rel_spd", observer="camera", targets=("b",), frames=(1, 2, 3, 4, 5))
    # 1/3 s → "0.3s", 5/3 s → "1.7s"
    assert render_question(rec, q).startswith("Between 0.3s and 1.7s, following the perspective of camera,")


def test_box_text_integer_pixels_no_spaces() -> None:
    assert box_text(np.array([10.9, 0.2, 639.99, 359.5]), 640, 360) == "[10,0,639,359]"
    assert box_text(np.array([-3.0, -1.0, 700.0, 400.0]), 640, 360) == "[0,0,639,359]"


def test_identical_descriptions_are_ambiguous() -> None:
    box = np.tile([5.0, 5.0, 50.0, 50.0], (6, 1))
    rec = make_record(6, force_visible=True, objects={
        "a": {"class": "cup", "centers": np.tile([1.0, 0.0, 0.5], (6, 1)), "boxes": box},
        "b": {"class": "cup", "centers": np.tile([2.0, 0.0, 0.5], (6, 1)), "boxes": box},
    })
    q = Query(type="rel_dis", observer="camera", targets=("a", "b"), frames=(0, 1, 2, 3))
    with pytest.raises(QAError) as err:
        render_question(rec, q)
    assert err.value.reason == "ambiguous_denotation"

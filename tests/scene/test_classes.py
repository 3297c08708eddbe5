"""Which classes have a front (and so may be agents): people, animals, vehicles, robots."""

from __future__ import annotations

import pytest

from dsr.scene.classes import FRONTED_CLASSES, has_front, head_noun


@pytest.mark.parametrize("phrase", ["person", "red car", "Small Dogs", "robot", "bus", "white horse", "cyclist",
                                    "motorcycle", "surfer"])
def test_people_animals_vehicles_and_robots_have_a_front(phrase: str) -> None:
    assert has_front(phrase)


@pytest.mark.parametrize("phrase", ["ball", "box", "moving object", "red ball", "bottle", "chair", "", "   ",
                                    "bus stop"])
def test_things_have_no_front(phrase: str) -> None:
    assert not has_front(phrase)


def test_head_noun_is_the_last_word_singular() -> None:
    assert head_noun("Two Red Cars") == "car"
    assert head_noun("bus") == "bus"  # not "bu"
    assert head_noun("glass") == "glass"
    assert {"person", "car", "dog", "robot"} <= FRONTED_CLASSES


def test_world_agents_have_a_front_and_world_things_do_not() -> None:
    from dsr.world.config import AGENT_KINDS, THING_KINDS

    assert all(has_front(k) for k in AGENT_KINDS)
    assert [k for k in THING_KINDS if has_front(k)] == ["car"]  # a car has a front, but does not steer here

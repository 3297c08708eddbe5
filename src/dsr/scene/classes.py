"""Which object classes have a front — the one list every stage uses to decide who can be an agent.

DSR asks about an agent's orientation ("from the person's perspective", "is the dog facing the car"), so an
agent must have a front. A class has one when it is a person, an animal or a vehicle (the COCO classes of
those kinds plus common synonyms) or a walking robot (the MuJoCo worlds' agents). Balls, boxes, bottles and
class-agnostic "moving object"s have none. An extracted object is an agent only when its class has a front
*and* its orientation was measured (:func:`dsr.extract.pipeline.lift_objects` applies the second half).

A class phrase is matched on its last word (its head noun in phrases like "red car" or "small dog"),
lower-cased, with a plural "s" removed.
"""

from __future__ import annotations

PEOPLE: frozenset[str] = frozenset({
    "person", "people", "man", "woman", "child", "kid", "boy", "girl", "pedestrian", "cyclist", "rider",
    "player", "dancer", "skier", "skateboarder", "surfer", "runner", "human",
})
ANIMALS: frozenset[str] = frozenset({
    # COCO
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
    # common in DAVIS / VLM4D clips
    "animal", "goat", "camel", "swan", "duck", "deer", "fish", "monkey", "rabbit", "lion", "tiger", "pig",
    "chicken", "mouse", "kangaroo", "dolphin",
})
VEHICLES: frozenset[str] = frozenset({
    # COCO
    "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    # synonyms
    "vehicle", "bike", "motorbike", "scooter", "van", "taxi", "tractor", "plane", "aeroplane", "ship",
    "tram", "kart", "jeep", "suv",
})
ROBOTS: frozenset[str] = frozenset({"robot", "humanoid"})

FRONTED_CLASSES: frozenset[str] = PEOPLE | ANIMALS | VEHICLES | ROBOTS


def head_noun(class_phrase: str) -> str:
    """The phrase's last word, lower-cased, singular by dropping a plural "s" ("Red cars" → "car")."""
    words = class_phrase.strip().lower().replace("_", " ").split()
    if not words:
        return ""
    word = words[-1]
    if word not in FRONTED_CLASSES and word.endswith("s") and word[:-1] in FRONTED_CLASSES:
        return word[:-1]
    return word


def has_front(class_phrase: str) -> bool:
    """True when objects of this class have a front (people, animals, vehicles, robots)."""
    return head_noun(class_phrase) in FRONTED_CLASSES

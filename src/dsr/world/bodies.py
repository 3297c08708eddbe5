"""Shapes of the moving objects, as lists of MuJoCo geoms in the object's own frame.

Body frame of every object: origin at its ground-truth 3D centre (the middle of its vertical extent,
inside its solid volume), x forward, y left, z up. Parts are laid out from the floor up and then
shifted so the origin is the centre; :func:`object_parts` returns the parts and the height of the
centre above the floor when the object stands on it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

# Colour roles, resolved to RGB per object by the scene generator.
BODY, LIGHT, DARK, MARKER = "body", "light", "dark", "marker"


@dataclass(frozen=True)
class Part:
    """One geom. ``fromto`` (capsules) and ``pos`` are in the body frame, metres.

    material: name suffix of a textured material of the object ("skin"), or None for plain colour.
    """

    name: str
    geom_type: str
    size: tuple[float, ...]
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    color: str = BODY
    fromto: tuple[float, float, float, float, float, float] | None = None
    zaxis: tuple[float, float, float] | None = None
    material: str | None = None


def _person(height: float) -> tuple[list[Part], float]:
    s = height / 1.73
    parts = [Part(f"leg_{side}", "capsule", (0.08 * s,), color=DARK,
                  fromto=(0.0, y * s, 0.08 * s, 0.0, y * s, 0.75 * s)) for side, y in (("l", 0.1), ("r", -0.1))]
    parts += [Part(f"foot_{side}", "box", (0.11 * s, 0.05 * s, 0.04 * s), (0.06 * s, y * s, 0.04 * s), DARK)
              for side, y in (("l", 0.1), ("r", -0.1))]
    parts.append(Part("torso", "capsule", (0.2 * s,), color=BODY, fromto=(0, 0, 0.9 * s, 0, 0, 1.3 * s)))
    parts += [Part(f"arm_{side}", "capsule", (0.06 * s,), color=BODY,
                   fromto=(0.0, y * s, 1.38 * s, 0.06 * s, 1.1 * y * s, 0.85 * s))
              for side, y in (("l", 0.27), ("r", -0.27))]
    parts.append(Part("head", "sphere", (0.13 * s,), (0.0, 0.0, 1.6 * s), LIGHT))
    parts += [Part(f"eye_{side}", "sphere", (0.028 * s,), (0.11 * s, y * s, 1.65 * s), DARK)
              for side, y in (("l", 0.05), ("r", -0.05))]
    # The face marker: a vivid nose sticking out of the front of the head.
    parts.append(Part("nose", "sphere", (0.05 * s,), (0.14 * s, 0.0, 1.59 * s), MARKER))
    return parts, 1.73 * s


def _robot(height: float) -> tuple[list[Part], float]:
    s = height / 1.2
    parts = [
        Part("base", "cylinder", (0.26 * s, 0.06 * s), (0.0, 0.0, 0.06 * s), DARK),
        Part("body", "box", (0.22 * s, 0.2 * s, 0.3 * s), (0.0, 0.0, 0.45 * s), BODY),
        Part("neck", "cylinder", (0.05 * s, 0.06 * s), (0.0, 0.0, 0.8 * s), DARK),
        Part("head", "box", (0.15 * s, 0.17 * s, 0.13 * s), (0.0, 0.0, 0.98 * s), LIGHT),
        # The face marker: a visor across the front of the head.
        Part("visor", "box", (0.025 * s, 0.13 * s, 0.05 * s), (0.16 * s, 0.0, 1.0 * s), MARKER),
        Part("antenna", "capsule", (0.015 * s,), color=DARK, fromto=(0, 0, 1.11 * s, 0, 0, 1.2 * s)),
    ]
    return parts, 1.2 * s


def _ball(radius: float) -> tuple[list[Part], float]:
    return [Part("ball", "sphere", (radius,), (0.0, 0.0, radius), BODY, material="skin")], 2 * radius


def _box(half: float) -> tuple[list[Part], float]:
    return [Part("box", "box", (half, half, half), (0.0, 0.0, half), BODY, material="skin")], 2 * half


def _car(length: float) -> tuple[list[Part], float]:
    s = length / 2
    parts = [Part(f"wheel_{i}", "cylinder", (0.3 * s, 0.08 * s), (x * s, y * s, 0.3 * s), DARK, zaxis=(0.0, 1.0, 0.0))
             for i, (x, y) in enumerate(((0.6, 0.42), (0.6, -0.42), (-0.6, 0.42), (-0.6, -0.42)))]
    parts += [
        Part("chassis", "box", (1.0 * s, 0.4 * s, 0.18 * s), (0.0, 0.0, 0.55 * s), BODY),
        Part("cabin", "box", (0.5 * s, 0.36 * s, 0.2 * s), (-0.15 * s, 0.0, 0.93 * s), LIGHT),
    ]
    parts += [Part(f"headlight_{side}", "box", (0.02 * s, 0.08 * s, 0.05 * s), (1.0 * s, y * s, 0.6 * s), MARKER)
              for side, y in (("l", 0.25), ("r", -0.25))]
    return parts, 1.13 * s


_SHAPES = {"person": _person, "robot": _robot, "ball": _ball, "box": _box, "car": _car}


def object_parts(kind: str, size: float) -> tuple[list[Part], float]:
    """Geoms of an object of ``kind`` and ``size`` (see ObjectSpec.size) with the origin at its centre.

    Returns (parts, centre height above the floor when standing on it).
    """
    parts, top = _SHAPES[kind](size)
    dz = top / 2

    def shift(p: Part) -> Part:
        fromto = None if p.fromto is None else (*p.fromto[:2], p.fromto[2] - dz, *p.fromto[3:5], p.fromto[5] - dz)
        return replace(p, pos=(p.pos[0], p.pos[1], p.pos[2] - dz), fromto=fromto)

    return [shift(p) for p in parts], dz


def footprint_radius(kind: str, size: float) -> float:
    """Radius (metres) of a vertical cylinder about the centre that holds every part of the object."""
    parts, _ = object_parts(kind, size)
    reach = 0.0
    for p in parts:
        if p.fromto is not None:
            ends = ((p.fromto[0], p.fromto[1]), (p.fromto[3], p.fromto[4]))
            reach = max(reach, *(float(np.hypot(*e)) + p.size[0] for e in ends))
        elif p.geom_type == "box" or p.zaxis is not None:  # a box, or a wheel (a cylinder lying along y)
            reach = max(reach, float(np.hypot(abs(p.pos[0]) + p.size[0], abs(p.pos[1]) + p.size[1])))
        else:  # sphere, upright cylinder
            reach = max(reach, float(np.hypot(p.pos[0], p.pos[1])) + p.size[0])
    return reach


def footprint_box(kind: str, size: float) -> tuple[float, float]:
    """Half extents (along forward, along left) of the object's outline seen from above, in metres."""
    parts, _ = object_parts(kind, size)
    hx = hy = 0.0
    for p in parts:
        if p.fromto is not None:
            xs, ys = (p.fromto[0], p.fromto[3]), (p.fromto[1], p.fromto[4])
            hx = max(hx, *(abs(x) + p.size[0] for x in xs))
            hy = max(hy, *(abs(y) + p.size[0] for y in ys))
        elif p.geom_type == "box" or p.zaxis is not None:  # a box, or a wheel (a cylinder lying along y)
            hx, hy = max(hx, abs(p.pos[0]) + p.size[0]), max(hy, abs(p.pos[1]) + p.size[1])
        else:  # sphere, upright cylinder
            hx, hy = max(hx, abs(p.pos[0]) + p.size[0]), max(hy, abs(p.pos[1]) + p.size[0])
    return hx, hy

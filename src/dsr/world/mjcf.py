"""SceneSpec → MJCF text (MuJoCo's XML model), built in code.

Moving objects are mocap bodies (posed per frame by the renderer); their geoms are named
``<object_id>/<part>``. The camera ``view`` is posed per frame as well. Static geoms (floor, walls,
props) belong to the world body, so segmentation maps every object geom to its object by body.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

import numpy as np

from dsr.world.bodies import object_parts
from dsr.world.scene import ROOM_HALF, WALL_HEIGHT, SceneSpec, TextureSpec

CAMERA_NAME = "view"


def _f(values: object) -> str:
    """Numbers → MJCF attribute text (enough digits that MuJoCo reads back what we meant)."""
    return " ".join(f"{float(v):.9g}" for v in np.ravel(np.asarray(values, dtype=np.float64)))


def _attrs(**kwargs: object) -> str:
    return " ".join(f"{k}={quoteattr(str(v))}" for k, v in kwargs.items() if v is not None)


def _texture(name: str, tex: TextureSpec, kind: str) -> str:
    extra = {}
    if tex.mark != "none":
        extra = {"mark": tex.mark, "markrgb": _f(tex.markrgb)}
        if tex.mark == "random":
            extra["random"] = f"{tex.random:.4g}"
    return (f"<texture {_attrs(name=name, type=kind, builtin=tex.builtin, rgb1=_f(tex.rgb1), rgb2=_f(tex.rgb2), width=tex.texels, height=tex.texels, **extra)}/>")


def build_mjcf(spec: SceneSpec) -> str:
    """The MuJoCo model of ``spec`` as MJCF text."""
    cfg = spec.config
    assets: list[str] = [
        f"<texture {_attrs(name='sky', type='skybox', builtin='gradient', rgb1=_f(spec.sky[0]), rgb2=_f(spec.sky[1]), width=64, height=64)}/>",
        _texture("floor", spec.floor, "2d"),
        f"<material {_attrs(name='floor', texture='floor', texrepeat=_f([spec.floor.repeat] * 2), texuniform='true')}/>",
    ]
    world: list[str] = [
        f"<light {_attrs(name='key', directional='true', pos='0 0 10', dir='-0.3 -0.2 -1', diffuse='0.55 0.55 0.55', specular='0.1 0.1 0.1', castshadow=str(cfg.shadows).lower())}/>",
        f"<geom {_attrs(name='floor', type='plane', size=_f([ROOM_HALF, ROOM_HALF, 0.1]), material='floor')}/>",
    ]
    # Walls: planes facing the room centre (normal n, local x = up × n, local y = up).
    for i, (tex, normal) in enumerate(zip(spec.walls, ((0, -1, 0), (0, 1, 0), (-1, 0, 0), (1, 0, 0)), strict=True)):
        n = np.array(normal, dtype=np.float64)
        x_axis = np.cross([0.0, 0.0, 1.0], n)
        pos = -n * ROOM_HALF + np.array([0.0, 0.0, WALL_HEIGHT / 2])
        assets.append(_texture(f"wall_{i}", tex, "2d"))
        assets.append(f"<material {_attrs(name=f'wall_{i}', texture=f'wall_{i}', texrepeat=_f([tex.repeat] * 2), texuniform='true')}/>")
        world.append(f"<geom {_attrs(name=f'wall_{i}', type='plane', pos=_f(pos), xyaxes=_f([*x_axis, 0, 0, 1]), size=_f([ROOM_HALF, WALL_HEIGHT / 2, 0.1]), material=f'wall_{i}')}/>")
    for prop in spec.props:
        assets.append(_texture(prop.name, prop.texture, "cube"))
        assets.append(f"<material {_attrs(name=prop.name, texture=prop.name, texuniform='true', texrepeat=_f([prop.texture.repeat] * 2))}/>")
        world.append(f"<geom {_attrs(name=prop.name, type='box', pos=_f(prop.center), size=_f(prop.half_size), euler=_f([0, 0, prop.yaw]), material=prop.name)}/>")
    world.append(f"<camera {_attrs(name=CAMERA_NAME, pos='0 0 0', fovy=f'{spec.fovy_deg:.9g}', mode='fixed')}/>")

    for obj in spec.objects:
        parts, _ = object_parts(obj.kind, obj.size)
        if obj.skin is not None:
            assets.append(_texture(f"{obj.object_id}/skin", obj.skin, "cube"))
            assets.append(f"<material {_attrs(name=f'{obj.object_id}/skin', texture=f'{obj.object_id}/skin')}/>")
        geoms = []
        for part in parts:
            placement = {"fromto": _f(part.fromto)} if part.fromto is not None else {"pos": _f(part.pos)}
            if part.zaxis is not None:
                placement["zaxis"] = _f(part.zaxis)
            look = ({"material": f"{obj.object_id}/{part.material}", "rgba": "1 1 1 1"} if part.material
                    else {"rgba": _f([*obj.colors[part.color], 1.0])})
            geoms.append(f"<geom {_attrs(name=f'{obj.object_id}/{part.name}', type=part.geom_type, size=_f(part.size), **placement, **look)}/>")
        world.append(f"<body {_attrs(name=obj.object_id, mocap='true', pos=_f(obj.centers[0]), quat=_f(obj.quats[0]))}>"
                     + "".join(geoms) + "</body>")

    shadow = 1024 if cfg.shadows else 0
    visual = (
        f"<visual><global {_attrs(offwidth=cfg.width, offheight=cfg.height)}/>"
        f"<quality {_attrs(shadowsize=shadow, offsamples=0, numslices=16, numstacks=8)}/>"
        f"<headlight {_attrs(ambient='0.35 0.35 0.35', diffuse='0.35 0.35 0.35', specular='0 0 0')}/>"
        f"<map {_attrs(znear='0.005', zfar='4')}/></visual>"
    )
    return (f"<mujoco model=\"dsr-world-{cfg.seed}\"><compiler angle=\"radian\"/>{visual}"
            f"<asset>{''.join(assets)}</asset><worldbody>{''.join(world)}</worldbody></mujoco>")

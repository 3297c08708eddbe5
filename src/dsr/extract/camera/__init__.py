"""Weight-free camera estimation, one module per estimator (extraction.md §3.4).

* :mod:`~dsr.extract.camera.rotation`: rotation-only homography model (static or turning cameras);
* :mod:`~dsr.extract.camera.colmap`: pycolmap incremental SfM;
* :mod:`~dsr.extract.camera.vo`: essential-matrix keyframe VO;
* :mod:`~dsr.extract.camera.auto`: tries them in that order (the CPU default);
* :mod:`~dsr.extract.camera.features`: the optical-flow / SIFT front end shared by VO and rotation-only;
* :mod:`~dsr.extract.camera.common`: the config, the uniform constructor, intrinsics, the sampled track.

All methods run on the clip's dense frames and report poses at the sampled frames. Each returns a
:class:`~dsr.extract.base.CameraEstimate` that says whether it trusts its output and why. Untrusted poses
are marked invalid; a clip whose geometry cannot be trusted gets no record. Build them through the
registry (``create_estimator("camera/vo", config=..., focal_px=...)``); general pose maths lives in
:mod:`dsr.scene.poses`.
"""

from dsr.extract.camera.common import CameraConfig

__all__ = ["CameraConfig"]

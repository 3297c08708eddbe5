"""Umeyama alignment, ATE and RPE — against known transforms and against evo on real trajectories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from dsr.scene.align import (
    Sim3,
    associate_trajectories,
    ate,
    path_length,
    rpe,
    scale_drift_rate,
    scale_error_fit,
    umeyama,
)
from dsr.scene.trajectory_files import read_euroc, read_kitti, read_tum


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 20.0))
def test_umeyama_recovers_a_known_similarity(seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(30, 3))
    truth = Sim3(Rotation.random(random_state=seed).as_matrix(), rng.normal(size=3) * 5, scale)
    fit = umeyama(src, truth.apply(src))
    assert np.allclose(fit.rotation, truth.rotation, atol=1e-8)
    assert np.allclose(fit.translation, truth.translation, atol=1e-6)
    assert np.isclose(fit.scale, scale)
    rigid = umeyama(src, truth.apply(src) / scale * 1.0, with_scale=False)
    assert rigid.scale == 1.0


def test_ate_is_zero_after_alignment_and_positive_without() -> None:
    rng = np.random.default_rng(0)
    ref = np.cumsum(rng.normal(size=(50, 3)), axis=0)
    est = Sim3(Rotation.from_euler("z", 40, degrees=True).as_matrix(), np.array([1.0, 2, 3]), 0.3).apply(ref)
    assert ate(est, ref, "sim3")[0].rmse < 1e-9
    assert ate(est, ref, "se3")[0].rmse > 0.1
    assert ate(est, ref, "none")[0].rmse > 1.0
    assert np.isclose(path_length(np.array([[0, 0, 0], [3, 4, 0], [3, 4, 1.0]])), 6.0)


def test_rpe_of_a_constant_drift() -> None:
    # estimate moves 1.1 m per frame where the reference moves 1.0 m: translation RPE = 0.1 everywhere
    ref = np.stack([np.eye(4)] * 5)
    ref[:, 0, 3] = np.arange(5.0)
    est = ref.copy()
    est[:, 0, 3] *= 1.1
    stats = rpe(est, ref)
    assert np.isclose(stats.rmse, 0.1) and stats.count == 4
    assert np.isclose(rpe(est, ref, delta=2).mean, 0.2)
    assert rpe(est, ref, part="rotation_deg").max == 0.0


# --------------------------------------------------------------------------- real data vs the evo package

CASES = {
    # name: (reader of ref, reader of est, alignment)
    "tum_rgbdslam_se3": ("freiburg1_xyz-groundtruth.txt", "freiburg1_xyz-rgbdslam.txt", "se3"),
    "tum_orb_mono_sim3": ("freiburg1_xyz-groundtruth.txt", "freiburg1_xyz-ORB_kf_mono.txt", "sim3"),
    "euroc_v102_sim3": ("V102_groundtruth.csv", "V102.txt", "sim3"),
    "kitti_00_se3": ("KITTI_00_gt.txt", "KITTI_00_ORB.txt", "se3"),
}


def _read(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    if name.endswith(".csv"):
        return read_euroc(folder / name)
    if name.startswith("KITTI"):
        return read_kitti(folder / name)
    return read_tum(folder / name)


def _evo_reference(folder: Path, ref_name: str, est_name: str, alignment: str) -> tuple[float, float, float]:
    evo_file = pytest.importorskip("evo.tools.file_interface")
    from evo.core import metrics, sync

    def load(name: str):
        if name.endswith(".csv"):
            return evo_file.read_euroc_csv_trajectory(str(folder / name))
        if name.startswith("KITTI"):
            return evo_file.read_kitti_poses_file(str(folder / name))
        return evo_file.read_tum_trajectory_file(str(folder / name))

    ref, est = load(ref_name), load(est_name)
    if hasattr(ref, "timestamps"):
        ref, est = sync.associate_trajectories(ref, est)
    est.align(ref, correct_scale=alignment == "sim3")
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref, est))
    rpe_t = metrics.RPE(metrics.PoseRelation.translation_part, 1, metrics.Unit.frames, all_pairs=False)
    rpe_t.process_data((ref, est))
    rpe_r = metrics.RPE(metrics.PoseRelation.rotation_angle_deg, 1, metrics.Unit.frames, all_pairs=False)
    rpe_r.process_data((ref, est))
    rmse = metrics.StatisticsType.rmse
    return ape.get_statistic(rmse), rpe_t.get_statistic(rmse), rpe_r.get_statistic(rmse)


@pytest.mark.shared
@pytest.mark.parametrize("case", sorted(CASES))
def test_ate_rpe_match_evo_on_shared_trajectories(shared_dir: Path, case: str) -> None:
    folder = shared_dir / "realdata" / "trajectories_evo"
    ref_name, est_name, alignment = CASES[case]
    t_ref, ref = _read(folder, ref_name)
    t_est, est = _read(folder, est_name)
    if ref_name.startswith("KITTI"):
        ids_ref = ids_est = np.arange(min(len(ref), len(est)))
    else:
        ids_ref, ids_est = associate_trajectories(t_ref, t_est)
    ref, est = ref[ids_ref], est[ids_est]
    ate_stats, transform = ate(est[:, :3, 3], ref[:, :3, 3], alignment)
    aligned = transform.apply_to_poses(est)
    ours = (ate_stats.rmse, rpe(aligned, ref).rmse, rpe(aligned, ref, part="rotation_deg").rmse)
    theirs = _evo_reference(folder, ref_name, est_name, alignment)
    assert np.allclose(ours, theirs, rtol=1e-6), (ours, theirs)


@given(rate=st.floats(-0.3, 0.3), speed=st.floats(0.2, 3.0), offset=st.floats(0.0, 10.0))
@settings(max_examples=30, deadline=None)
def test_scale_drift_rate_recovers_a_drift_drawn_by_the_record_model(rate: float, speed: float, offset: float) -> None:
    """A path whose steps the record's drift model (dsr.scene.uncertainty) stretched by exp(δ·(τ − τ̄)) reads δ back,
    whatever the speed and wherever the clock starts."""
    from dsr.scene.uncertainty import scale_drift_shifts

    t = offset + np.arange(20) * 0.5
    truth = np.stack([speed * (t - offset), np.sin(t), np.zeros(20)], axis=1)
    est = truth + scale_drift_shifts(truth, t, np.array([rate]))[0]
    assert scale_drift_rate(est, truth, t) == pytest.approx(rate, abs=1e-9)
    fit = scale_error_fit(est, truth, t)
    assert fit is not None and np.abs(fit[1]).max() < 1e-9  # a pure drift leaves no fast part


def test_scale_drift_rate_skips_paths_that_do_not_move() -> None:
    t = np.arange(10.0)
    still = np.zeros((10, 3))
    assert scale_drift_rate(still, still, t) is None
    # five moving steps of nine: fewer than six
    ref = np.zeros((10, 3))
    ref[5:, 0] = np.arange(5) + 1.0
    assert scale_drift_rate(ref * 2.0, ref, t) is None
    ref[:, 0] = np.arange(10.0)  # steady 1 m/s, estimated at twice the length: no drift
    assert scale_drift_rate(ref * 2.0, ref, t) == pytest.approx(0.0, abs=1e-12)

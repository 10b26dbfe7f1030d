"""The explorer's tables and plot data, on tiny hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from neurovision.app.sources import Erp
from neurovision.app.views import (
    butterfly_frame,
    concept_name,
    concept_ranks,
    experiments_table,
    framed,
    interval_note,
    interval_text,
    peak_latency,
    scalp_frame,
    subjects_table,
    summary_table,
)
from neurovision.evaluation import BOOTSTRAP, T_OVER_SUBJECTS
from neurovision.experiments import Experiment


def test_concept_name():
    assert concept_name("00001_aardvark") == "aardvark"
    assert concept_name("00042_ice_cream") == "ice cream"
    assert concept_name("plain") == "plain"
    assert concept_name("x_y") == "x y"  # no number in front: only the underscores go


def test_summary_table_keeps_the_order_and_skips_what_is_absent():
    metrics = {"top5": 0.5, "top5_chance": 0.25, "top1": 0.2, "top1_sd": 0.1,
               "top1_chance": 0.05, "mean_rank": 3.0, "top10": None, "other": 1.0,
               "top1_ci_low": 0.1, "top1_ci_high": 0.3}
    df = summary_table(metrics)
    assert list(df["metric"]) == ["top1", "top5", "mean_rank"]
    assert list(df["value"]) == [0.2, 0.5, 3.0]
    assert df["sd"].tolist()[0] == 0.1 and df["chance"].tolist()[:2] == [0.05, 0.25]
    assert df["ci_low"].tolist()[0] == 0.1 and df["ci_high"].tolist()[0] == 0.3
    assert df["ci_low"].isna().tolist()[1:] == [True, True]
    assert summary_table({}).empty and list(summary_table({}).columns) == [
        "metric", "value", "sd", "ci_low", "ci_high", "chance"]


def test_interval_texts_say_the_bounds_and_what_they_describe():
    m = {"top1_ci_low": 0.04, "top1_ci_high": 0.155, "ci_method": BOOTSTRAP, "n_test": 100}
    assert interval_text(m, "top1") == "95 % CI 4.0-15.5 %"
    assert interval_text(m, "top5") is None and interval_text({}, "top1") is None
    assert interval_note(m) == ("95 % intervals: percentile bootstrap over test images (100 "
                                "images: how much the score could differ on other test "
                                "images).")
    assert interval_note({"ci_method": T_OVER_SUBJECTS, "n_subjects": 3}).startswith(
        "95 % intervals: t interval of the mean over the 3 subjects")
    assert interval_note({}) is None


def test_subjects_table_has_a_row_per_subject_with_intervals():
    df = subjects_table([{"subject": 2, "top1": 0.2, "top1_ci_low": 0.1, "top1_ci_high": 0.3,
                          "top5": 0.5, "mean_rank": 4.0}, {"subject": 10, "top1": 0.4}])
    assert list(df["subject"]) == ["sub-02", "sub-10"]
    assert df.loc[0, ["top1", "top1_ci_low", "top1_ci_high"]].tolist() == [0.2, 0.1, 0.3]
    assert df["top5_ci_low"].isna().all() and df.loc[1, "top1"] == 0.4


def test_concept_ranks_sorts_by_mean_rank_over_subjects():
    def t(ranks):
        return [{"trial": i, "concept": f"c{i}", "rank": r} for i, r in enumerate(ranks)]
    df = concept_ranks({1: t([3, 1, 2]), 2: t([3, 2, 2])})
    assert list(df["trial"]) == [1, 2, 0]
    assert list(df["mean_rank"]) == [1.5, 2.0, 3.0]
    assert list(df["sub-2"]) == [2, 2, 3]
    assert list(concept_ranks({1: t([2, 2, 1])})["trial"]) == [2, 0, 1]  # ties by trial


def test_butterfly_frame_is_one_row_per_channel_and_time():
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    erp = Erp(data=data, ch_names=("a", "b", "c"), times=np.array([0.0, 0.1, 0.2, 0.3]))
    df = butterfly_frame(erp, 1)
    assert len(df) == 12
    for _, row in df.iterrows():
        ch, ti = "abc".index(row["channel"]), round(row["time"] * 10)
        assert row["amplitude"] == data[1, ch, ti]


def test_scalp_frame_interpolates_inside_the_electrodes_only():
    from neurovision.channels import positions
    names = ["O1", "Oz", "O2", "PO7", "PO8", "P7", "Pz", "P8"]
    pos = positions(names)
    values = 2 * pos[:, 0] - pos[:, 1] + 0.5  # a linear field is reproduced exactly
    df = scalp_frame(values, pos, resolution=61)
    assert len(df) > 20
    cx, cy = (df["x"] + df["x2"]) / 2, (df["y"] + df["y2"]) / 2
    # exactly up to griddata's iterative gradient estimate (CloughTocher2DInterpolator, tol 1e-6)
    np.testing.assert_allclose(df["value"], 2 * cx - cy + 0.5, atol=1e-6)
    assert cy.max() <= pos[:, 1].max() + 1e-9 and cy.min() >= pos[:, 1].min() - 1e-9
    with pytest.raises(ValueError, match="positions of shape"):
        scalp_frame(values[:3], pos)


def test_peak_latency_stays_in_the_window():
    times = np.round(np.arange(-0.2, 0.8, 0.01), 2)
    data = np.zeros((1, 3, len(times)))
    data[0, :, 10] = [5, -5, 0]   # large spread at -0.1 s (outside the window)
    data[0, :, 40] = [1, -1, 0]   # smaller spread at 0.2 s
    erp = Erp(data=data, ch_names=("a", "b", "c"), times=times)
    assert peak_latency(erp, 0, None) == pytest.approx(-0.1)
    assert peak_latency(erp, 0, (0.0, 0.8)) == pytest.approx(0.2)
    assert peak_latency(erp, 0, (5.0, 6.0)) == pytest.approx(-0.1)  # empty window: all


def test_framed_adds_a_border_of_the_colour():
    img = Image.new("RGB", (10, 8), "black")
    out = framed(img, "#2ca02c", width=3)
    assert out.size == (16, 14)
    assert out.getpixel((0, 0)) == (0x2C, 0xA0, 0x2C) and out.getpixel((8, 7)) == (0, 0, 0)


def exp(name, rev, params, summary):
    return Experiment(name=name, rev=rev, params=params, per_subject={}, summary=summary)


def test_experiments_table_keeps_params_that_differ():
    def m(top1):
        return {"top1": top1, "top5": 0.5, "top10": 0.9, "mean_rank": 3.0, "other": 1}
    exps = [exp("workspace", "workspace", {"train": {"mapper": "pls", "seed": 0}}, m(0.375)),
            exp("main", "b7dcbfe7d5e0", {"train": {"mapper": "ridge", "seed": 0}}, {}),
            exp("pls-exp", "b303bfc69e35", {"train": {"mapper": "pls", "seed": 0}}, m(0.4)),
            exp("ridge-exp", "c1", {"train": {"mapper": "ridge", "seed": 1}}, m(0.2))]
    df = experiments_table(exps)
    assert list(df["experiment"]) == ["workspace", "pls-exp", "ridge-exp"]  # main: no metrics
    assert list(df.columns) == ["experiment", "rev", "train.mapper", "train.seed", "top1",
                                "top5", "top10", "mean_rank"]
    assert list(df["rev"]) == ["workspa", "b303bfc", "c1"]
    assert list(df["train.mapper"]) == ["pls", "pls", "ridge"]
    assert list(df["top1"]) == [0.375, 0.4, 0.2]
    # a param that is the same everywhere is left out, except the mapper
    same = experiments_table([exps[0], exps[2]])
    assert list(same.columns) == ["experiment", "rev", "train.mapper", "top1", "top5",
                                  "top10", "mean_rank"]
    empty = experiments_table([])
    assert empty.empty and isinstance(empty, pd.DataFrame)

"""The neurovision explorer page.  Start it with ``neurovision app`` (see the README).

Arguments after ``--`` on the streamlit command line: ``--root DIR`` (a project whose
pipeline has run; default: the working directory) or ``--bundle DIR`` (a bundle written by
the ``bundle`` stage).  Everything shown is read by a :mod:`neurovision.app.sources` source
and shaped by :mod:`neurovision.app.views`; this file only lays it out.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from neurovision.app.sources import SOURCES, MissingOutput, Source
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
from neurovision.channels import positions, with_position
from neurovision.errors import NeurovisionError

TITLE = "neurovision explorer"
TRUE_COLOR = "#2ca02c"
GRID_COLUMNS = 5
TOP_METRICS = (("top1", "top-1"), ("top5", "top-5"), ("top10", "top-10"))


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="streamlit_app.py", add_help=False)
    ap.add_argument("--root", default=".", help="project root with the pipeline's outputs")
    ap.add_argument("--bundle", default=None, help="bundle directory (overrides --root)")
    args, _ = ap.parse_known_args(argv)
    return args


@st.cache_resource(show_spinner="Opening the results…", max_entries=4)
def get_source(kind: str, root: str, stamp: float) -> Source:
    """One source per kind, root and version, shared by all sessions (its loads are
    memoised); ``stamp`` changes when the pipeline reruns, so new outputs are read afresh."""
    return SOURCES[kind](root)


# --------------------------------------------------------------------------------------
# Failure pages


def missing_page(exc: MissingOutput) -> None:
    st.header("Run this stage first")
    also = f" (or {exc.alternative})" if exc.alternative else ""
    st.info(f"The explorer needs `{exc.path}`{also}, which does not exist yet.")
    st.markdown(f"{exc.advice[:1].upper()}{exc.advice[1:]}:")
    st.code(exc.command, language="bash")
    st.caption("`dvc repro` alone runs the whole pipeline. If the output was there before and "
               "a failed run removed it (DVC deletes a stage's outputs just before the stage "
               "runs), `dvc checkout` brings back the last good outputs from DVC's cache.")


def missing_notice(exc: MissingOutput) -> None:
    st.warning(f"Not available: `{exc.path}` is missing. Run `{exc.command}`.")


def guarded(view, *args) -> None:
    """Run a view; a missing file or unreadable output becomes a message, not a traceback."""
    try:
        view(*args)
    except MissingOutput as exc:
        missing_notice(exc)
    except NeurovisionError as exc:
        st.error(f"Cannot show this: {exc}")


# --------------------------------------------------------------------------------------
# Trial view


def pick_random(n: int) -> None:
    current = st.session_state.get("trial", 0)
    choices = [i for i in range(n) if i != current] or [current]
    st.session_state["trial"] = random.SystemRandom().choice(choices)


def apply_query_params(subjects: list[int], n_test: int) -> None:
    """Once per session: start at ``?subject=S&trial=I`` if both name an existing trial.

    Only integers from the known lists are accepted; anything else is ignored.
    """
    if st.session_state.get("_query_applied"):
        return
    st.session_state["_query_applied"] = True
    qp = st.query_params
    try:
        subject = int(qp.get("subject", subjects[0]))
        trial = int(qp.get("trial", 0))
    except ValueError:
        return
    if subject in subjects and 0 <= trial < n_test:
        st.session_state["subject"], st.session_state["trial"] = subject, trial


def trial_view(res: Source) -> None:
    subjects = res.ready_subjects()
    absent = [s for s in res.subjects if s not in subjects]
    if absent:
        st.caption("No rankings yet for " + ", ".join(
            f"sub-{s:02d} (`{res.missing('trials', s).command}`)" for s in absent))
    apply_query_params(subjects, res.n_test)
    c1, c2, c3, c4 = st.columns([1, 3, 1, 2], vertical_alignment="bottom")
    subject = c1.selectbox("Subject", subjects, format_func=lambda s: f"sub-{s:02d}",
                           key="subject")
    trials = res.trials(subject)
    n = len(trials)
    if st.session_state.get("trial", 0) >= n:
        st.session_state["trial"] = 0
    trial = c2.selectbox(
        "Test trial", list(range(n)), key="trial",
        format_func=lambda i: f"{i}: {concept_name(trials[i]['concept'])} "
                              f"(rank {trials[i]['rank']})")
    c3.button("Random trial", key="random", on_click=pick_random, args=(n,))
    k_max = min(res.top_k, len(trials[trial]["top_indices"]))
    k = c4.slider("K, results shown", 1, k_max, value=k_max, key="k") if k_max > 1 else 1
    st.query_params.update({"subject": str(subject), "trial": str(trial)})  # shareable link
    t = trials[trial]

    left, right = st.columns([1, 3], gap="large")
    with left:
        st.subheader("Seen image")
        st.image(framed(res.image(trial), TRUE_COLOR), caption=concept_name(t["concept"]),
                 width="stretch")
        st.metric(f"Rank of the true image (of {n})", int(t["rank"]))
        st.metric("Cosine score of the true image", f"{t['true_score']:.3f}")
    with right:
        st.subheader(f"Top {k} retrieved images")
        if t["rank"] > k:
            st.caption(f"The true image is at rank {t['rank']}, outside the top {k}.")
        with st.container(key="results"):
            cols = st.columns(GRID_COLUMNS)
            for j, (idx, score) in enumerate(zip(t["top_indices"][:k], t["top_scores"][:k])):
                hit = idx == trial
                caption = f"#{j + 1} {concept_name(res.concept(idx))} · {score:.3f}"
                cols[j % GRID_COLUMNS].image(
                    framed(res.image(idx), TRUE_COLOR if hit else "white"),
                    caption=caption + (" ✓ true image" if hit else ""), width="stretch")
    if res.can_score(subject):
        guarded(score_chart, res, subject, trial)
    st.subheader("EEG of this trial")
    guarded(eeg_view, res, subject, trial)


def score_chart(res: Source, subject: int, trial: int) -> None:
    scores = res.trial_scores(subject, trial)
    df = pd.DataFrame({"image": [concept_name(res.concept(i)) for i in range(len(scores))],
                       "score": scores, "true": np.arange(len(scores)) == trial})
    df = df.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    df["position"] = np.arange(1, len(df) + 1)
    with st.expander(f"Similarity to all {len(df)} gallery images (the saved mapper applied to "
                     f"this trial's EEG)"):
        chart = alt.Chart(df).mark_bar().encode(
            x=alt.X("position:Q", title="gallery image, most similar first"),
            y=alt.Y("score:Q", title="cosine score"),
            color=alt.Color("true:N", scale=alt.Scale(domain=[False, True],
                                                      range=["#9aa5b1", TRUE_COLOR]),
                            legend=alt.Legend(title="true image")),
            tooltip=["position", "image", alt.Tooltip("score:Q", format=".3f")],
        ).properties(height=200)
        st.altair_chart(chart, width="stretch")


def eeg_view(res: Source, subject: int, trial: int) -> None:
    erp = res.erp(subject)
    window = res.window(subject)
    times = [round(float(x), 4) for x in erp.times]
    default = round(peak_latency(erp, trial, window), 4)
    if st.session_state.get("latency") not in times:
        st.session_state["latency"] = default
    latency = st.select_slider("Latency of the scalp map (s)", options=times, key="latency")
    li = times.index(latency)
    left, right = st.columns([3, 2], gap="large")
    with left:
        df = butterfly_frame(erp, trial)
        lines = alt.Chart(df).mark_line(strokeWidth=1.2).encode(
            x=alt.X("time:Q", title="time after image onset (s)"),
            y=alt.Y("amplitude:Q", title="amplitude (a.u., whitened)"),
            color=alt.Color("channel:N", legend=alt.Legend(columns=2, symbolLimit=0)),
            tooltip=["channel", alt.Tooltip("time:Q", format=".2f"),
                     alt.Tooltip("amplitude:Q", format=".3f")])
        layers = []
        if window is not None:
            layers.append(alt.Chart(pd.DataFrame({"start": [window[0]], "end": [window[1]]}))
                          .mark_rect(opacity=0.12, color="#1f77b4")
                          .encode(x="start:Q", x2="end:Q"))
        rule = alt.Chart(pd.DataFrame({"t": [latency]})).mark_rule(
            color="black", strokeDash=[4, 3]).encode(x="t:Q")
        st.altair_chart(alt.layer(*layers, lines, rule).properties(
            height=320, title="Repetition-averaged ERP per channel" +
            (f" (shaded: decoder window {window[0]:g}–{window[1]:g} s)" if window else "")),
            width="stretch")
    with right:
        names = with_position(erp.ch_names)
        values = erp.data[trial][[erp.ch_names.index(c) for c in names], li]
        st.altair_chart(scalp_chart(names, values, latency), width="content")


def scalp_chart(names: list[str], values: np.ndarray, latency: float) -> alt.LayerChart:
    """Scalp map of the posterior head (where the release's 17 channels are), nose up.

    Electrodes sit where MNE's topomaps put them (``neurovision.channels.positions``, units of
    head radius); the arc is MNE's head circle, the unit circle.
    """
    width, height = 400, 200
    pos = positions(names)
    grid = scalp_frame(values, pos, resolution=101)
    lim = float(np.max(np.abs(values))) or 1.0
    # The back half of the head, one scale for x and y (width / height = x span / y span).
    xs = alt.Scale(domain=[-0.85, 0.85], nice=False)
    ys = alt.Scale(domain=[-1.03, -0.18], nice=False)
    # The colour bar is labelled at 0 and at +-lim rounded down to two significant digits, and
    # is shorter than the plot (its title sits above it) so that its end labels stay inside.
    step = 10.0 ** (np.floor(np.log10(lim)) - 1)
    tick = float(np.floor(lim / step) * step)
    legend = alt.Legend(values=[-tick, 0.0, tick], format=".2~g", gradientLength=height - 50)
    heat = alt.Chart(grid).mark_rect(clip=True).encode(
        x=alt.X("x:Q", scale=xs, axis=None), x2="x2:Q",
        y=alt.Y("y:Q", scale=ys, axis=None), y2="y2:Q",
        color=alt.Color("value:Q", title="a.u.", legend=legend,
                        scale=alt.Scale(scheme="redblue", reverse=True, domain=[-lim, lim])))
    a = np.linspace(np.pi, 2 * np.pi, 181)
    head = pd.DataFrame({"x": np.cos(a), "y": np.sin(a), "o": np.arange(len(a))})
    outline = alt.Chart(head).mark_line(color="#444", clip=True).encode(
        x=alt.X("x:Q", scale=xs), y=alt.Y("y:Q", scale=ys), order="o")
    el = pd.DataFrame({"x": pos[:, 0], "y": pos[:, 1], "channel": names, "value": values})
    dots = alt.Chart(el).mark_circle(color="black", size=22).encode(
        x="x:Q", y="y:Q", tooltip=["channel", alt.Tooltip("value:Q", format=".3f")])
    labels = alt.Chart(el).mark_text(dy=-9, fontSize=10).encode(x="x:Q", y="y:Q",
                                                                text="channel:N")
    # Room on the right for the colour bar's widest label, e.g. "−3.2".
    return alt.layer(heat, outline, dots, labels).properties(
        width=width, height=height, padding={"left": 5, "top": 5, "right": 20, "bottom": 5},
        title=f"Scalp map at {latency:g} s (back of the head, nose up)")


# --------------------------------------------------------------------------------------
# Overview


def overview(res: Source) -> None:
    subjects = res.ready_subjects()
    st.subheader("Retrieval, with chance levels")
    if res.has("summary"):
        summary = res.summary()
        st.caption(f"Mean over {summary.get('n_subjects', len(res.subjects))} subject(s); "
                   f"mapper {summary.get('mapper', '?')}, protocol "
                   f"{summary.get('protocol', '?')}, {summary.get('n_test', res.n_test)} "
                   f"test images.")
    else:
        missing_notice(res.missing("summary"))
        summary = res.subject_metrics(subjects[0])
        st.caption(f"Showing sub-{subjects[0]:02d} only.")
    cols = st.columns(len(TOP_METRICS))
    for col, (key, label) in zip(cols, TOP_METRICS):
        if summary.get(key) is not None:
            col.metric(f"{label} (chance {summary[f'{key}_chance']:.1%})",
                       f"{summary[key]:.1%}")
            if (ci := interval_text(summary, key)) is not None:
                col.caption(ci)
    st.dataframe(summary_table(summary), hide_index=True, width="stretch")
    if (note := interval_note(summary)) is not None:
        st.caption(note)

    per_subject = [res.subject_metrics(s) for s in subjects if res.has("metrics", s)]
    if len(per_subject) > 1:
        st.dataframe(subjects_table(per_subject), hide_index=True, width="stretch")
        if (note := interval_note(per_subject[0])) is not None:
            st.caption(f"Per subject: {note}")

    left, right = st.columns(2, gap="large")
    with left:
        guarded(topk_chart, res, subjects)
    with right:
        guarded(rank_chart, res, subjects)
    st.subheader("Best and worst decoded concepts")
    guarded(best_worst, res, subjects)
    st.subheader("Experiments")
    guarded(experiments, res)


def topk_chart(res: Source, subjects: list[int]) -> None:
    df = pd.concat([res.topk_curve(s).assign(subject=f"sub-{s:02d}") for s in subjects])
    lines = alt.Chart(df).mark_line().encode(
        x=alt.X("k:Q", title="K"), y=alt.Y("accuracy:Q", title="top-K accuracy",
                                            scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("subject:N"), tooltip=["subject", "k", "accuracy"])
    chance = alt.Chart(df[df["subject"] == df["subject"].iloc[0]]).mark_line(
        strokeDash=[4, 3], color="gray").encode(x="k:Q", y="chance:Q")
    st.altair_chart(alt.layer(lines, chance).properties(
        height=300, title="Top-K accuracy (dashed: chance)"), width="stretch")


def rank_chart(res: Source, subjects: list[int]) -> None:
    df = pd.concat([res.rank_histogram(s).assign(subject=f"sub-{s:02d}") for s in subjects])
    chart = alt.Chart(df).mark_bar().encode(
        x=alt.X("rank:N", title="rank of the true image", sort=None),
        y=alt.Y("count:Q", title="test images"),
        color=alt.Color("subject:N"), xOffset="subject:N",
        tooltip=["subject", "rank", "count"])
    st.altair_chart(chart.properties(height=300, title="Rank of the true image"),
                    width="stretch")


def best_worst(res: Source, subjects: list[int], n_show: int = GRID_COLUMNS) -> None:
    table = concept_ranks({s: res.trials(s) for s in subjects})
    n_show = min(n_show, len(table) // 2) or 1
    for label, rows in (("best", table.head(n_show)),
                        ("worst", table.tail(n_show).iloc[::-1])):
        st.markdown(f"**{label.capitalize()} decoded** (mean rank of the true image over "
                    f"{len(subjects)} subject(s))")
        cols = st.columns(GRID_COLUMNS)
        for j, row in enumerate(rows.itertuples()):
            cols[j % GRID_COLUMNS].image(
                res.image(int(row.trial)), width=140,
                caption=f"{concept_name(row.concept)} · mean rank {row.mean_rank:.1f}")


def experiments(res: Source) -> None:
    if not res.compares_experiments:
        st.caption("A bundle holds one experiment; compare experiments in the project.")
        return
    if st.button("Compare DVC experiments (runs `dvc exp show`)", key="experiments"):
        st.session_state["exp_table"] = experiments_table(res.experiments())
    df = st.session_state.get("exp_table")
    if df is None:
        st.caption("Experiments made with `dvc exp run -S train.mapper=pls` appear here.")
        return
    if len(df) < 2:
        st.info("Only one set of results so far; run another experiment, e.g. "
                "`dvc exp run -S train.mapper=pls`.")
    st.dataframe(df, hide_index=True, width="stretch")
    if len(df) and "top1" in df:
        st.altair_chart(alt.Chart(df).mark_bar().encode(
            x=alt.X("top1:Q", title="top-1 accuracy"), y=alt.Y("experiment:N", sort="-x"),
            tooltip=list(df.columns)).properties(height=40 + 28 * len(df)), width="stretch")


# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    st.set_page_config(page_title=TITLE, page_icon="🧠", layout="wide")
    st.title(TITLE)
    try:
        kind = "bundle" if args.bundle else "pipeline"
        root = Path(args.bundle if args.bundle else args.root).resolve()
        res = get_source(kind, str(root), SOURCES[kind].version_stamp(root))
        res.check_ready()
    except MissingOutput as exc:
        missing_page(exc)
        return
    except NeurovisionError as exc:
        st.error(f"Cannot read the results: {exc}")
        return
    st.caption(f"Reading {res.label}. Zero-shot retrieval: each test trial's EEG, averaged "
               f"over repetitions, is mapped to an image embedding and the {res.n_test} unseen "
               f"test images are ranked by cosine similarity.")
    trial_tab, overview_tab = st.tabs(["Trial", "Overview"])
    with trial_tab:
        guarded(trial_view, res)
    with overview_tab:
        guarded(overview, res)


main()

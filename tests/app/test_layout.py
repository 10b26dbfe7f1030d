"""The layouts the explorer reads: the pipeline's is the one dvc.yaml writes; the checks of
the rankings and of the bundle's own files."""

from __future__ import annotations

import pytest
import yaml

from conftest import ROOT
from neurovision.app.layout import (
    BUNDLE_FORMAT,
    PIPELINE_FILES,
    check_manifest,
    check_test_images,
    check_trials,
)
from neurovision.errors import DataError


def declared_outputs(stage: dict) -> list[str]:
    paths = []
    for section in ("outs", "metrics", "plots"):
        for entry in stage.get(section, []):
            paths.append(entry if isinstance(entry, str) else next(iter(entry)))
    return paths


@pytest.mark.parametrize("key", [k for k, (_, st) in PIPELINE_FILES.items() if st])
def test_pipeline_layout_matches_dvc_yaml(key):
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    rel, stage = PIPELINE_FILES[key]
    name, _, item = stage.format(s=3).partition("@")
    spec = stages[name]
    if "foreach" in spec:
        spec = yaml.safe_load(yaml.safe_dump(spec["do"]).replace("${item}", item))
    path = rel.format(s=3)
    assert any(path == out or path.startswith(out.rstrip("/") + "/")
               for out in declared_outputs(spec)), (key, path, declared_outputs(spec))


def test_check_trials_names_the_problem():
    good = [{"trial": i, "concept": "c", "file": "f", "rank": 1, "true_score": 0.5,
             "top_indices": [i], "top_scores": [0.5]} for i in range(3)]
    assert check_trials(good, 3, "t.json") is good
    with pytest.raises(DataError, match=r"t\.json: expected a list of 4 trials"):
        check_trials(good, 4, "t.json")
    with pytest.raises(DataError, match=r"expected a list of 3 trials .*, got dict"):
        check_trials({}, 3, "t.json")
    bad = [dict(t) for t in good]
    bad[1]["top_indices"] = [7]
    with pytest.raises(DataError, match=r"trial 1: top_indices must be gallery indices in "
                                        r"\[0, 3\)"):
        check_trials(bad, 3, "t.json")
    bad = [dict(t) for t in good]
    bad[2]["rank"] = 0
    with pytest.raises(DataError, match="trial 2"):
        check_trials(bad, 3, "t.json")
    bad = [dict(t) for t in good]
    del bad[0]["true_score"]
    with pytest.raises(DataError, match="trial 0 must have keys"):
        check_trials(bad, 3, "t.json")


def test_check_manifest_refuses_other_formats_and_versions():
    good = {"format": BUNDLE_FORMAT, "version": 3, "subjects": [1]}
    assert check_manifest(good, "m.json") is good
    with pytest.raises(DataError, match=r"m\.json: expected format 'neurovision-bundle', got 'x'"):
        check_manifest({**good, "format": "x"}, "m.json")
    with pytest.raises(DataError, match="got \\[1, 2\\]"):
        check_manifest([1, 2], "m.json")
    with pytest.raises(DataError, match="expected bundle version 3, got 1; rebuild"):
        check_manifest({**good, "version": 1}, "m.json")


def test_check_test_images_wants_two_equal_lists():
    meta = {"test_img_files": ["a.jpg", "b.jpg"], "test_img_concepts": ["00001_x", "00002_y"]}
    assert check_test_images(meta, "meta.json") == (meta["test_img_files"],
                                                    meta["test_img_concepts"])
    for bad in ({**meta, "test_img_files": ["a.jpg"]}, {"test_img_files": [],
                                                        "test_img_concepts": []}, [], {}):
        with pytest.raises(DataError, match=r"meta\.json: expected equal, non-empty lists"):
            check_test_images(bad, "meta.json")

"""A run that fails leaves the earlier good outputs in place, through ``dvc repro`` and
``dvc exp run``: bad params and missing local inputs fail in the check stage, before DVC
deletes any output; a failure found later by a stage (DVC has then removed that stage's
outputs) is undone by ``dvc checkout``, as the README says."""

from __future__ import annotations

import hashlib
import re
import subprocess

import pytest
import yaml

from conftest import TINY_DEMO, copy_project, dvc, write_params

pytestmark = pytest.mark.integration

SMALL = {**TINY_DEMO, "n_train_concepts": 10, "n_test": 8, "test_reps": 4, "image_size": 32}
OUTPUTS = ("data", "embeds", "models", "metrics", "bundle")


def snapshot(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for folder in OUTPUTS for p in sorted((root / folder).rglob("*")) if p.is_file()
            and not p.relative_to(root).as_posix().startswith("data/params/")}


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def edit(root, update) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    update(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("failed"))
    write_params(root / "params.yaml", data={"source": "demo", "subjects": [1], "local_dir": None,
                                             "demo": SMALL},
                 pca={"n_components": 8}, embed={"batch_size": 8})
    dvc(root, "repro")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", "good"], cwd=root, check=True, capture_output=True)
    return root


def _restore(root) -> None:
    subprocess.run(["git", "checkout", "params.yaml"], cwd=root, check=True, capture_output=True)


@pytest.mark.parametrize("change, message", [
    (lambda p: p["erp"].update(tmaxx=0.5), r"unknown key 'erp\.tmaxx'.*did you mean 'tmax'"),
    (lambda p: p["train"].update(mapper="lasso"),
     r"train\.mapper: expected one of \['ridge', 'pls', 'mlp', 'contrastive', 'align'\], "
     r"got 'lasso'"),
    (lambda p: p["train"].update(maper="ridge"), r"unknown key 'train\.maper'.*did you mean "
                                                 r"'mapper'"),
    (lambda p: p["embed"].update(model="ViT-Q-99"), r"embed\.model: expected an OpenCLIP model"),
    (lambda p: p["data"].update(source="local", local_dir="empty-folder"),
     r"data\.local_dir: .*empty-folder is not a directory"),
], ids=["key-typo", "unknown-mapper", "train-key-typo", "unknown-model", "local-missing"])
def test_dvc_repro_with_a_bad_value_keeps_every_output(project, change, message):
    before = snapshot(project)
    edit(project, change)
    try:
        proc = dvc(project, "repro", check=False)
        assert proc.returncode != 0
        assert re.search(message, proc.stdout + proc.stderr), proc.stdout + proc.stderr
        assert ran(proc.stdout) == {"check"}  # nothing else started
        assert snapshot(project) == before
    finally:
        _restore(project)


def test_dvc_exp_run_with_a_bad_mapper_gives_the_projects_message(project):
    before = snapshot(project)
    proc = dvc(project, "exp", "run", "-S", "train.mapper=lasso", check=False)
    try:
        assert proc.returncode != 0
        assert "train.mapper: expected one of ['ridge', 'pls', 'mlp', 'contrastive', 'align']" in (
            proc.stdout + proc.stderr)
        assert snapshot(project) == before
        # DVC's own behaviour, documented in the README: the failed experiment's -S value
        # stays in the workspace's params.yaml
        assert yaml.safe_load((project / "params.yaml").read_text())["train"]["mapper"] == \
            "lasso"
    finally:
        _restore(project)


def test_another_mappers_settings_rerun_nothing_but_the_check(project):
    edit(project, lambda p: p["train"]["mlp"].update(alpha=0.5))  # the mapper is ridge
    try:
        out = dvc(project, "repro").stdout
        assert ran(out) == {"check"}
    finally:
        _restore(project)
        dvc(project, "repro")


def test_a_failure_inside_a_stage_is_undone_by_dvc_checkout(project):
    before = snapshot(project)
    # valid params, but a bin wider than the ERP window: only the erp stage can tell
    edit(project, lambda p: p["erp"].update(bin_size=1000))
    try:
        proc = dvc(project, "repro", check=False)
        assert proc.returncode != 0 and "erp.bin_size: expected at most" in proc.stderr
        assert not (project / "data/features/train/sub-1.npy").exists()  # DVC removed them
    finally:
        _restore(project)
    dvc(project, "checkout")
    assert snapshot(project) == before
    # the check stage had passed with the other value: at most it reruns (or DVC restores
    # it from its run cache), nothing else
    assert ran(dvc(project, "repro").stdout) <= {"check"}
    assert snapshot(project) == before
    assert "up to date" in dvc(project, "status").stdout

import pytest
import yaml

from conftest import ROOT
from neurovision.errors import ParamError
from neurovision.params import Params, load_params, parse_params


def test_project_params_are_valid_and_complete():
    p = load_params(ROOT / "params.yaml")
    assert isinstance(p, Params)
    assert p.erp.channels == "all"
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    # every section in the schema is spelled out in params.yaml (documented there)
    assert set(raw) == {"data", "erp", "embed", "pca", "train", "evaluate"}


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(ParamError, match=r"unknown key 'train.ridge.alpah'.*did you mean 'alpha'"):
        parse_params({"train": {"ridge": {"alpah": 1}}})
    with pytest.raises(ParamError, match=r"unknown key 'trian'.*did you mean 'train'"):
        parse_params({"trian": {}})


@pytest.mark.parametrize("raw, where", [
    ({"train": {"mapper": "svm"}}, "train.mapper"),
    ({"train": {"ridge": {"alpha": -1}}}, "train.ridge.alpha"),
    ({"erp": {"channels": []}}, "erp.channels"),
    ({"erp": {"tmin": 0.5, "tmax": 0.1}}, "erp.tmax"),
    ({"data": {"subjects": [0]}}, "data.subjects"),
    ({"data": {"subjects": "1"}}, "data.subjects"),
    ({"pca": {"n_components": 0}}, "pca.n_components"),
    ({"embed": {"batch_size": "big"}}, "embed.batch_size"),
    ({"train": {"protocol": "inter"}}, "train.protocol"),
])
def test_bad_values_name_the_parameter(raw, where):
    with pytest.raises(ParamError, match=rf"params: {where.replace('.', '[.]')}.*expected .*got"):
        parse_params(raw)


def test_yaml_scientific_notation_string_is_a_float():
    assert parse_params({"train": {"mlp": {"alpha": "1e-3"}}}).train.mlp.alpha == 0.001

"""params.yaml loading: every bad key or value is an error that names it."""

import pytest
import yaml

from sagan.config import Config, ConfigError, config_from_dict, flatten, load_config
from tests.helpers import REPO


def _params(**sections) -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in sections.items():
        raw[section] = {**raw[section], **values}
    return raw


def test_the_repo_params_load():
    config = load_config(REPO / "params.yaml")
    assert config.model.latent_dim == 128
    assert config.train.batch_size == 64
    assert config.model.attention_resolutions == (16,)


def test_every_config_field_is_in_params_yaml():
    # params.yaml documents every tunable: a field missing there would be an undocumented default.
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(flatten(Config())) == {f"{s}.{k}" for s, values in raw.items() for k in values}


def test_every_default_is_the_value_in_params_yaml():
    # A key deleted from params.yaml must not silently change the run.
    assert flatten(Config()) == flatten(load_config(REPO / "params.yaml"))


def test_config_is_immutable():
    config = load_config(REPO / "params.yaml")
    with pytest.raises(AttributeError):
        config.train.batch_size = 1


def test_a_typo_names_the_key_and_lists_the_valid_ones():
    raw = _params(train={"lerning_rate": 0.1})
    with pytest.raises(
        ConfigError,
        match=r"unknown key train\.lerning_rate; valid keys of train: "
        r"batch_size, steps, epochs",
    ):
        config_from_dict(raw)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("train", "batch_size", -3, "train.batch_size must be a positive integer, got -3"),
        ("train", "batch_size", 0, "train.batch_size must be a positive integer, got 0"),
        ("train", "batch_size", 6.5, "train.batch_size must be a positive integer, got 6.5"),
        ("train", "batch_size", "64", "train.batch_size must be a positive integer, got '64'"),
        ("train", "batch_size", True, "train.batch_size must be a positive integer, got True"),
        ("train", "d_lr", float("nan"), "train.d_lr must be a finite number, got nan"),
        ("train", "g_lr", float("inf"), "train.g_lr must be a finite number, got inf"),
        ("train", "g_lr", "fast", "train.g_lr must be a number, got 'fast'"),
        ("train", "beta_2", 1.5, "train.beta_2 must be at most"),
        (
            "train",
            "loss",
            "lsgan",
            "train.loss must be one of hinge, bce, wasserstein, got 'lsgan'",
        ),
        ("model", "attention", "yes", "model.attention must be true or false, got 'yes'"),
        (
            "train",
            "jit_compile",
            "yes",
            "train.jit_compile must be one of auto, true, false, got 'yes'",
        ),
        ("train", "jit_compile", 1, "train.jit_compile must be one of auto, true, false, got 1"),
        (
            "train",
            "perceptual_layers",
            ["block1_conv2", "fc1"],
            r"train.perceptual_layers\[1\] must be one of block1_conv1, .*, got 'fc1'",
        ),
        ("train", "perceptual_weight", -1.0, "train.perceptual_weight must be at least 0.0"),
        (
            "model",
            "discriminator_scales",
            [1, 3],
            r"model.discriminator_scales\[1\] must be a power of two",
        ),
        (
            "model",
            "attention_resolutions",
            [16, 12],
            r"model.attention_resolutions\[1\] must be a power of two",
        ),
        (
            "model",
            "attention_resolutions",
            16,
            "model.attention_resolutions must be a non-empty list",
        ),
        ("data", "image_size", 48, "data.image_size must be one of 32, 64, 128, got 48"),
        ("data", "num_train", -1, "data.num_train must be a positive integer, got -1"),
        ("evaluate", "kid_subset_size", 1, "evaluate.kid_subset_size must be at least 2, got 1"),
        (
            "mlflow",
            "registered_model",
            "my model",
            "mlflow.registered_model must be a name of letters, digits, '_', '.' and '-', "
            "got 'my model'",
        ),
    ],
)
def test_bad_values_name_the_full_key(section, key, value, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_params(**{section: {key: value}}))


def test_null_is_allowed_only_where_documented():
    folder = {"source": "folder", "path": "faces.zip", "num_train": None}
    assert config_from_dict(_params(data=folder)).data.num_train is None
    with pytest.raises(ConfigError, match="train.steps must be a positive integer, got None"):
        config_from_dict(_params(train={"steps": None}))


def test_a_missing_section_is_an_error():
    raw = _params()
    del raw["model"]
    with pytest.raises(ConfigError, match="missing section model"):
        config_from_dict(raw)


def test_a_section_that_is_not_a_mapping_is_an_error():
    with pytest.raises(ConfigError, match="train must be a mapping"):
        config_from_dict(_params() | {"train": [1, 2]})


def test_a_missing_key_takes_its_default():
    raw = _params()
    del raw["train"]["beta_1"]
    assert config_from_dict(raw).train.beta_1 == 0.0


def test_yaml_tags_never_run_code(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_a_missing_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="params file not found: .*nowhere.yaml"):
        load_config(tmp_path / "nowhere.yaml")


def test_flatten_names_every_key():
    flat = flatten(load_config(REPO / "params.yaml"))
    assert flat["train.batch_size"] == 64
    assert flat["model.attention_resolutions"] == (16,)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"data": {"source": "folder", "path": None}},
            "data.path must name a folder or .zip of images for data.source folder",
        ),
        (
            {"data": {"source": "synthetic", "num_test": None}},
            "data.num_test must be a positive integer for data.source synthetic",
        ),
        (
            {"data": {"image_size": 32}, "model": {"attention_resolutions": [16, 32]}},
            r"model.attention_resolutions \(\[16, 32\]\) must be inner feature-map sizes "
            r"at data.image_size \(32\): choose from \[16\]",
        ),
        (
            {"model": {"condition_on": ["hair"]}},
            r"model.condition_on \(\['hair'\]\) is for a conditional model, but "
            "model.conditional is false",
        ),
        (
            {"generate": {"attributes": {"hair": 1}}},
            r"generate.attributes \(\{'hair': 1\}\) is for a conditional model, but "
            "model.conditional is false",
        ),
        (
            {"evaluate": {"intra_fid_attribute": "hair"}},
            "evaluate.intra_fid_attribute .* model.conditional is false",
        ),
        (
            {
                "model": {
                    "conditional": True,
                    "pack": 1,
                    "condition_on": ["hair", "glasses", "hair"],
                }
            },
            "model.condition_on .* names 'hair' twice",
        ),
        (
            {
                "model": {"conditional": True, "pack": 1, "condition_on": ["hair"]},
                "generate": {"attributes": {"glasses": 1}},
            },
            r"generate.attributes names 'glasses', which model.condition_on \(\['hair'\]\)",
        ),
        (
            {
                "model": {"conditional": True, "pack": 1, "condition_on": ["hair"]},
                "evaluate": {"intra_fid_attribute": "smile"},
            },
            r"evaluate.intra_fid_attribute \('smile'\) must be one of model.condition_on",
        ),
        (
            {"train": {"steps": 100, "ema_decay": 0.999, "ema_start": 100}},
            r"train.ema_start \(100\) must be below train.steps \(100\)",
        ),
        (
            {"train": {"standing_samples": 32}},
            r"train.standing_samples \(32\) must be at least train.batch_size \(64\)",
        ),
        (
            {"train": {"perceptual_weight": 1.0, "jit_compile": True}},
            "train.perceptual_weight > 0 with train.jit_compile and train.deterministic: XLA "
            "has no deterministic gradient of VGG19's max-pools",
        ),
        (
            {"model": {"discriminator_scales": [2, 1]}},
            r"model.discriminator_scales \(\[2, 1\]\) must list each factor once, smallest",
        ),
        (
            {"data": {"image_size": 32}, "model": {"discriminator_scales": [1, 4]}},
            "model.discriminator_scales: 4 leaves the discriminator a 8px image",
        ),
        (
            {"model": {"minibatch_stddev": 5}},
            r"model.minibatch_stddev \(5\) must divide the 32 inputs D gets per batch "
            r"\(train.batch_size 64 / model.pack 2\)",
        ),
        (
            {"model": {"pack": 4, "minibatch_stddev": 32}},
            r"model.minibatch_stddev \(32\) must divide the 16 inputs D gets per batch "
            r"\(train.batch_size 64 / model.pack 4\)",
        ),
        (
            {"model": {"pack": 3}},
            r"model.pack \(3\) must divide train.batch_size \(64\)",
        ),
        (
            {"train": {"r1_weight": 1.0, "r1_every": 5000}},
            r"train.r1_every \(5000\) must be at most train.steps \(3000\), or no update takes R1",
        ),
        (
            {"model": {"architecture": "resnet", "d_depth": 1}},
            r"model.d_depth \(1\) is for model.architecture reference; resnet has its residual",
        ),
        (
            {"model": {"conditional": True}},  # the default packs 2
            r"model.pack \(2\) does not combine with model.conditional",
        ),
        (
            {"generate": {"num_samples": 500}},
            r"evaluate.num_samples \(1000\) must be at most generate.num_samples \(500\)",
        ),
        (
            {"evaluate": {"num_samples": 256}},
            r"evaluate.kid_subset_size \(500\) must be at most evaluate.num_samples \(256\): "
            "lower kid_subset_size or raise num_samples",
        ),
        (
            {"evaluate": {"num_samples": 3, "kid_subset_size": 2}},
            r"evaluate.pr_k \(3\) must be below evaluate.num_samples \(3\)",
        ),
    ],
)
def test_an_impossible_combination_names_both_keys(sections, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_params(**sections))


@pytest.mark.parametrize(
    "sections",
    [
        {"train": {"steps": 100, "ema_decay": 0.999, "ema_start": 99}},
        {"train": {"epochs": 1.0, "ema_decay": 0.999, "ema_start": 5000}},  # budget from data
        {"model": {"attention": False, "attention_resolutions": [64]}},
        {"evaluate": {"num_samples": 500}},
        {
            "model": {"conditional": True, "pack": 1, "condition_on": ["hair", "glasses"]},
            "generate": {"attributes": {"glasses": 1}},
            "evaluate": {"intra_fid_attribute": "hair"},
        },
        {  # names are checked against the prepared data's attributes when it is read
            "model": {"conditional": True, "pack": 1},
            "generate": {"attributes": {"glasses": 1}},
            "evaluate": {"intra_fid_attribute": "hair"},
        },
    ],
)
def test_combinations_at_their_limits_load(sections):
    config_from_dict(_params(**sections))


def test_too_few_samples_for_kid_fail_when_the_file_loads(tmp_path):
    raw = _params(evaluate={"num_samples": 256})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"evaluate.kid_subset_size .* evaluate.num_samples"):
        load_config(path)

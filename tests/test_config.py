import json

import pytest

from mnistlab.config import MODEL_NAMES, Config
from mnistlab.errors import ConfigError


def test_defaults_are_the_seed_notebooks():
    config = Config()
    assert (config.model, config.epochs, config.batch_size) == ("seed-mlp", 10, 512)
    assert (config.learning_rate, config.seed, config.top_errors) == (0.001, 0, 10)
    assert config.validation_split == 0.1


@pytest.mark.parametrize(
    "changes",
    [
        {"model": "resnet"},
        {"dataset": "cifar"},
        {"epochs": 0},
        {"epochs": 2.5},
        {"epochs": True},
        {"batch_size": -1},
        {"learning_rate": 0},
        {"learning_rate": "fast"},
        {"validation_split": 1.0},
        {"validation_split": -0.1},
        {"ema_momentum": 1.0},
        {"ema_momentum": -0.5},
        {"ema_momentum": True},
        {"dropout": 1.0},
        {"dropout": -0.1},
        {"dropout": True},
        {"dropout": "high"},
        {"seed": -3},
        {"train_limit": 0},
        {"shift_pixels": -1},
        {"shift_pixels": 5},  # past MNIST's 4-pixel margin
        {"shift_pixels": 1.5},
        {"warmup_epochs": -0.5},
        {"warmup_epochs": 10},  # all of the default 10 epochs
        {"warmup_epochs": "slow"},
    ],
)
def test_bad_values_raise_config_error_naming_the_field(changes):
    with pytest.raises(ConfigError) as caught:
        Config(**changes)
    name = next(iter(changes))
    assert name.split("_")[0] in str(caught.value)


def test_no_validation_split_and_no_averaging_are_valid_zeros():
    config = Config(validation_split=0, ema_momentum=0)
    assert (config.validation_split, config.ema_momentum) == (0, 0)
    assert Config().ema_momentum == 0.0  # the seed notebook saves the last step's weights
    assert Config().dropout is None and Config(dropout=0).dropout == 0  # None: the model's own


def test_json_round_trip(tmp_path):
    config = Config(epochs=3, seed=7, train_limit=100)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    assert Config.from_json_file(path) == config


def test_replace_keeps_fields_given_as_none():
    config = Config(epochs=3).replace(epochs=None, seed=5)
    assert (config.epochs, config.seed) == (3, 5)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not readable JSON"),
        ('{"epochz": 3}', "unknown config key"),
        ("[1]", "JSON object"),
    ],
)
def test_bad_config_files(tmp_path, content, message):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        Config.from_json_file(path)


def test_every_model_name_has_a_builder():
    from mnistlab.models import BUILDERS

    assert tuple(BUILDERS) == MODEL_NAMES

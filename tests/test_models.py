import keras
import numpy as np

from tests.helpers import AUGMENTED_MODEL
from mnistlab.config import Config
from mnistlab.models import build_model


def test_seed_mlp_is_exactly_the_notebooks_model():
    model = build_model(Config())
    layers = [(type(layer).__name__, layer.get_config()) for layer in model.layers]
    assert [name for name, _ in layers] == ["Dense", "Dense", "Dropout", "Dense"]
    assert [layers[i][1]["units"] for i in (0, 1, 3)] == [128, 128, 10]
    assert [layers[i][1]["activation"] for i in (0, 1, 3)] == ["relu", "relu", "softmax"]
    assert layers[2][1]["rate"] == 0.25
    assert model.input_shape == (None, 784)
    assert model.count_params() == 118_282
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert np.isclose(float(model.optimizer.learning_rate), 0.001)
    assert model.loss == "categorical_crossentropy"


def test_outputs_are_probabilities():
    model = build_model(Config())
    probabilities = np.asarray(model.predict(np.random.rand(5, 784).astype("float32"), verbose=0))
    assert probabilities.shape == (5, 10)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_each_model_has_its_own_defaults_and_flags_override_them(monkeypatch):
    from mnistlab import config

    monkeypatch.setattr(config, "cpu_has_native_bfloat16", lambda: True)
    assert Config.for_model("seed-mlp") == Config()
    cnn = Config.for_model("cnn", epochs=3)
    assert (cnn.model, cnn.epochs, cnn.batch_size, cnn.lr_schedule, cnn.mixed_precision) == (
        "cnn",
        3,
        128,
        "cosine",
        True,
    )
    assert Config.for_model("cnn-best").epochs == 40
    assert Config.for_model("cnn", mixed_precision=False).mixed_precision is False
    fast = Config.for_model("cnn-fast")
    assert (fast.epochs, fast.batch_size, fast.learning_rate) == (2, 128, 0.01)
    assert (fast.lr_schedule, fast.warmup_epochs, fast.shift_pixels) == ("cosine", 0.25, 1)
    assert fast.mixed_precision is False and fast.augment is False
    assert (cnn.warmup_epochs, cnn.shift_pixels) == (0.25, 1)
    # Only the models that set them warm up or shift: the shipped cnn-best's recipe is unchanged.
    for name in ("seed-mlp", "cnn-best"):
        assert (Config.for_model(name).warmup_epochs, Config.for_model(name).shift_pixels) == (0, 0)


def test_audit_trains_the_slow_models_fewer_epochs_per_fold_unless_told():
    assert Config.for_audit("seed-mlp") == Config.for_model("seed-mlp")
    assert Config.for_audit("cnn") == Config.for_model("cnn", epochs=4)
    assert Config.for_audit("cnn-best", seed=3).epochs == 4
    assert Config.for_audit("cnn", epochs=9, folds=3) == Config.for_model("cnn", epochs=9, folds=3)
    assert Config.for_audit("cnn", epochs=None).epochs == 4


def test_bfloat16_by_default_only_where_the_cpu_computes_it_natively(monkeypatch, tmp_path):
    from mnistlab import config

    avx2_only = tmp_path / "avx2"
    avx2_only.write_text("processor : 0\nflags : fpu sse2 avx avx2 fma\n")
    with_bf16 = tmp_path / "bf16"
    with_bf16.write_text("processor : 0\nflags : fpu avx2 avx512f avx512_bf16\n")
    assert config.cpu_has_native_bfloat16(avx2_only) is False
    assert config.cpu_has_native_bfloat16(with_bf16) is True
    assert config.cpu_has_native_bfloat16(tmp_path / "missing") is False
    monkeypatch.setattr(config, "cpu_has_native_bfloat16", lambda: False)
    assert Config.for_model("cnn").mixed_precision is False
    assert Config.for_model("cnn-best").mixed_precision is False
    assert Config.for_model("cnn", mixed_precision=True).mixed_precision is True


def test_convolutional_models_take_the_same_input_and_train_in_bfloat16():
    from mnistlab.models import float32_copy

    for name in ("cnn", "cnn-best", "cnn-fast"):
        config = Config.for_model(name, mixed_precision=True)  # whatever this CPU's default
        model = build_model(config, steps_per_epoch=10)
        assert model.input_shape == (None, 784) and model.output_shape == (None, 10)
        assert model.layers[1].dtype_policy.name == "mixed_bfloat16"
        assert model.layers[-1].dtype_policy.name == "float32"  # softmax stays float32
        copy = float32_copy(model, config)
        assert all(layer.dtype_policy.name == "float32" for layer in copy.layers)
        for left, right in zip(model.get_weights(), copy.get_weights(), strict=True):
            assert np.array_equal(left, right)


def test_cosine_schedule_decays_to_one_percent():
    config = Config.for_model("cnn", epochs=2, warmup_epochs=0)
    model = build_model(config, steps_per_epoch=5)
    schedule = model.optimizer.learning_rate  # evaluated at the current step, 0
    assert np.isclose(float(schedule), config.learning_rate)
    decay = model.optimizer._learning_rate
    assert np.isclose(float(decay(10)), config.learning_rate * 0.01)


def test_warm_up_rises_linearly_then_the_schedule_runs_over_the_steps_left():
    steps_per_epoch = 40
    cosine = Config.for_model("cnn", epochs=2, learning_rate=0.01, warmup_epochs=0.25)
    rate = build_model(cosine, steps_per_epoch).optimizer._learning_rate
    # 10 warm-up steps from 0 to the rate, then 70 of cosine decay to 1% of it.
    assert float(rate(0)) == 0.0
    assert np.isclose(float(rate(5)), 0.005) and np.isclose(float(rate(10)), 0.01)
    assert np.isclose(float(rate(45)), 0.01 * (0.01 + 0.99 * 0.5))  # half-way through the decay
    assert np.isclose(float(rate(80)), 0.0001)
    constant = Config(epochs=2, learning_rate=0.01, warmup_epochs=0.25)
    rate = build_model(constant, steps_per_epoch).optimizer._learning_rate
    assert np.isclose(float(rate(5)), 0.005)
    assert all(np.isclose(float(rate(step)), 0.01) for step in (10, 45, 80))
    assert not isinstance(
        build_model(Config(), steps_per_epoch).optimizer._learning_rate,
        keras.optimizers.schedules.LearningRateSchedule,
    )  # no warm-up, constant: a plain rate, as the seed notebook's


def test_augmentation_is_a_setting_on_by_default_only_for_cnn_best():
    assert Config.for_model("cnn-best").augment is True
    assert Config.for_model("cnn").augment is False and Config().augment is False
    assert Config.for_model("cnn", augment=True).augment is True
    # A config written before the setting existed keeps what its model did then.
    old = {"model": "cnn-best", "epochs": 40}
    assert Config.from_dict(old).augment is True
    assert Config.from_dict({"model": "cnn"}).augment is False
    assert Config.from_dict({**old, "augment": False}).augment is False


def _shipped_model() -> keras.Model:
    """cnn-best as first shipped, saved when augmentation was three Keras layers inside it."""
    return keras.saving.load_model(AUGMENTED_MODEL, compile=False)


def test_models_hold_no_augmentation_and_one_saved_with_its_layers_drops_them_for_inference():
    from mnistlab.models import AUGMENTATION_LAYERS, without_augmentation

    for name in ("seed-mlp", "cnn-best"):
        model = build_model(Config.for_model(name, augment=True), steps_per_epoch=10)
        assert not any(isinstance(layer, AUGMENTATION_LAYERS) for layer in model.layers)
        assert without_augmentation(model) is model

    shipped = _shipped_model()
    assert sum(isinstance(layer, AUGMENTATION_LAYERS) for layer in shipped.layers) == 3
    inference = without_augmentation(shipped)
    assert not any(isinstance(layer, AUGMENTATION_LAYERS) for layer in inference.layers)
    images = np.random.default_rng(0).random((4, 784)).astype("float32")
    at_inference = np.asarray(shipped(images, training=False))
    assert np.allclose(np.asarray(inference(images, training=False)), at_inference, atol=1e-6)
    # While training, the old layers still move the images (so inference must leave them out).
    reshape, rotation = shipped.layers[:2]
    moved = rotation(reshape(images), training=True)
    assert not np.allclose(np.asarray(moved), np.asarray(reshape(images)))


def test_trained_weights_carry_over_from_a_model_saved_with_augmentation_layers():
    from mnistlab.errors import ConfigError
    from mnistlab.models import load_trained_weights

    trained = _shipped_model()
    fresh = build_model(Config.for_model("cnn-best", mixed_precision=False), steps_per_epoch=10)
    images = np.random.default_rng(0).random((4, 784), dtype=np.float32)
    assert not np.allclose(fresh.predict(images, verbose=0), trained.predict(images, verbose=0))

    load_trained_weights(fresh, trained)
    # The old layers are the identity at inference, so the two now compute the same function.
    np.testing.assert_allclose(
        fresh.predict(images, verbose=0), trained.predict(images, verbose=0), rtol=1e-5, atol=1e-6
    )

    other = build_model(Config.for_model("seed-mlp"))
    try:
        load_trained_weights(other, trained)
    except ConfigError as error:
        assert "the networks differ" in str(error)
    else:
        raise AssertionError("a seed-mlp took a cnn's weights")


def test_dropout_setting_replaces_every_rate_in_training_and_in_the_saved_copy():
    from mnistlab.models import float32_copy

    def rates(model):
        return [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]

    assert rates(build_model(Config.for_model("cnn-best"), steps_per_epoch=10)) == [0.4] * 3
    config = Config.for_model("cnn-best", dropout=0.25, mixed_precision=False)
    model = build_model(config, steps_per_epoch=10)
    assert rates(model) == [0.25] * 3
    assert rates(float32_copy(model, config)) == [0.25] * 3

    # The rate is what the layers use: at 0, training mode drops nothing, so the seed MLP (no
    # batch norm) computes the same in training as at inference; at its own 0.25 it does not.
    images = np.random.default_rng(0).random((8, 784), dtype=np.float32)
    for dropout, same in ((0.0, True), (None, False)):
        mlp = build_model(Config(dropout=dropout))
        trained_mode = np.asarray(mlp(images, training=True))
        assert np.allclose(trained_mode, np.asarray(mlp(images, training=False))) is same

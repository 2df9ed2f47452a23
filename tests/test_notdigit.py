"""The not-a-digit head: the digits' answers stay exactly as they were, the head's folded
standardisation is exact, the threshold rule, and the non-digit renderers."""

from __future__ import annotations

import numpy as np
import pytest

from mnistlab import nondigits, notdigit
from mnistlab.errors import ImageError
from mnistlab.images import normalize_digit


@pytest.fixture(scope="module")
def small_cnn():
    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input(shape=(784,)),
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(4, 5, strides=4, activation="relu"),
            layers.Conv2D(8, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )


def test_the_head_leaves_the_ten_probabilities_unchanged(small_cnn):
    from mnistlab.inference import model_outputs

    digits = np.random.default_rng(0).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    features = np.asarray(notdigit.features_model(small_cnn)(digits.reshape(16, -1) / 255.0))
    # The softmax layer's input (4x4x8 flattened) and the last convolution's input (6x6x4).
    assert features.shape == (16, 4 * 4 * 8 + 6 * 6 * 4)
    is_digit = np.arange(16) % 2 == 0
    combined = notdigit.with_head(small_cnn, notdigit.fit_head(features, is_digit, epochs=2))
    raw = model_outputs(combined, digits)
    assert raw.shape == (16, 11)
    np.testing.assert_allclose(raw[:, :10], model_outputs(small_cnn, digits), atol=1e-6)
    assert ((raw[:, 10] >= 0) & (raw[:, 10] <= 1)).all()


def test_folding_the_standardisation_into_the_head_is_exact(monkeypatch):
    import keras

    rng = np.random.default_rng(0)
    features = rng.normal(5.0, 3.0, (64, 6)).astype(np.float32)
    is_digit = features[:, 0] > 5
    trained = {}
    original_fit = keras.Sequential.fit

    def remember(self, x, *args, **kwargs):  # The head as trained, on standardised features.
        result = original_fit(self, x, *args, **kwargs)
        trained["model"], trained["x"] = self, x
        return result

    monkeypatch.setattr(keras.Sequential, "fit", remember)
    folded = notdigit.fit_head(features, is_digit, epochs=3)
    as_trained = np.asarray(trained["model"](trained["x"]))
    logit = np.log(as_trained / (1 - as_trained))
    softened = 1 / (1 + np.exp(-logit / notdigit.SCORE_TEMPERATURE))
    np.testing.assert_allclose(np.asarray(folded(features)), softened, atol=1e-5)


def test_the_threshold_is_the_lowest_that_keeps_every_kind_within_the_loss():
    scores = {"mnist": np.array([0.1, 0.2, 0.3, 0.95]), "photo": np.array([0.1, 0.6])}
    # Losing at most a quarter of each kind: mnist may lose its 0.95, photo nothing: just
    # above 0.6, so 0.6 itself is kept.
    quarter = notdigit.choose_threshold(scores, dict.fromkeys(scores, 0.25))
    assert 0.6 < quarter == pytest.approx(0.6)
    # Half of each: mnist may lose 0.3 and 0.95, photo its 0.6: just above 0.2.
    assert 0.2 < notdigit.choose_threshold(scores, dict.fromkeys(scores, 0.5)) < 0.3
    assert notdigit.choose_threshold({"mnist": np.array([1.0])}, {"mnist": 0.0}) > 1.0


def test_fonts_for_training_and_for_the_benchmark_do_not_overlap():
    fonts = [f"/fonts/{name}.ttf" for name in "abcdefg"]
    train, bench = nondigits.split_fonts(fonts, "train"), nondigits.split_fonts(fonts, "bench")
    assert not set(train) & set(bench) and set(train) | set(bench) == set(fonts)
    with pytest.raises(ValueError, match="part"):
        nondigits.split_fonts(fonts, "test")


@pytest.mark.parametrize("kind", nondigits.KINDS)
def test_each_non_digit_kind_is_drawn_the_same_from_the_same_stream(kind):
    pool = np.zeros((5, 28, 28), np.uint8)
    pool[:, 6:22, 12:16] = 255  # Five "1"s for the strings.
    first = nondigits.render(kind, np.random.default_rng([3, 1]), [], pool)
    again = nondigits.render(kind, np.random.default_rng([3, 1]), [], pool)
    other = nondigits.render(kind, np.random.default_rng([3, 2]), [], pool)
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))
    try:
        seen = normalize_digit(first)
    except ImageError:  # Refused before the model: also an honest answer.
        return
    assert seen.shape == (28, 28) and seen.max() > 0


def test_letters_that_people_write_like_digits_are_never_drawn():
    assert not set(nondigits.LETTERS) & set("OoIlZzSsBgq")
    assert "A" in nondigits.LETTERS and "x" in nondigits.LETTERS


def test_training_photos_are_upright_as_a_decoded_upload_is(mnist):
    """A rendered photo stored sideways with an orientation tag is trained on as the server
    reads the same JPEG: turned upright, not as the sensor stored it."""
    import io

    from mnistlab import renderers
    from mnistlab.decoding import load_image

    digit, label = mnist.test_images[0], int(mnist.test_labels[0])
    tagged = [
        seed for seed in range(40) if renderers.render_photo(digit, np.random.default_rng(seed))[1]
    ]
    assert tagged, "no photo with an orientation tag in 40 streams"
    for seed in tagged[:3]:
        image, exif = renderers.render_photo(digit, np.random.default_rng(seed))
        upload = io.BytesIO()
        image.save(upload, format="JPEG", quality=95, exif=exif)
        served = normalize_digit(load_image(upload.getvalue())).astype(float)
        trained = notdigit._digit_image(("photo", digit, label, seed, ())).astype(float)
        sideways = np.rot90(trained)  # What an image read without its tag would resemble.
        assert np.abs(trained - served).mean() < 0.25 * np.abs(sideways - served).mean()


def test_the_heads_score_is_the_mean_of_its_members():
    rng = np.random.default_rng(1)
    features = rng.normal(0.0, 1.0, (64, 6)).astype(np.float32)
    is_digit = features[:, 0] > 0
    averaged = notdigit.fit_heads(features, is_digit, seed=3, epochs=2, count=3)
    members = [layer for layer in averaged.layers if layer.name.startswith("not_digit_")]
    assert len(members) == 3
    expected = np.mean([np.asarray(member(features)) for member in members], axis=0)
    np.testing.assert_allclose(np.asarray(averaged(features)), expected, atol=1e-6)
    # The members differ: each was trained from its own seed.
    assert not np.allclose(np.asarray(members[0](features)), np.asarray(members[1](features)))

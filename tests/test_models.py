import keras
import numpy as np

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

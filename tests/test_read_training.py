"""The sequence reader's training helpers and its ONNX graph."""

import numpy as np
import onnx
import onnxruntime
import pytest

from mnistlab import lines, read_training
from mnistlab.reader_export import reader_graph


@pytest.fixture(scope="module")
def trained_looking_model():
    """The reader's network with random weights and batch-norm statistics far from 0 and 1,
    so that folding them into the convolutions is put to the test."""
    model = read_training.build_model()
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 2.0, gamma.shape).astype(np.float32),
                    rng.normal(0, 0.5, beta.shape).astype(np.float32),
                    rng.normal(0, 0.5, mean.shape).astype(np.float32),
                    rng.uniform(0.2, 3.0, variance.shape).astype(np.float32),
                ]
            )
        elif type(layer).__name__ == "Bidirectional":  # biases start at 0: make them count
            for gru in (layer.forward_layer, layer.backward_layer):
                kernel, recurrent, bias = gru.get_weights()
                gru.set_weights([kernel, recurrent, rng.normal(0, 0.3, bias.shape)])
    return model


def test_the_onnx_reader_reads_as_keras_does_at_every_width(trained_looking_model, tmp_path):
    path = tmp_path / "reader.onnx"
    read_training.export(trained_looking_model, path)
    graph = onnx.load(path)
    operators = {node.op_type for node in graph.graph.node}
    assert "GRU" in operators and "Loop" not in operators  # the recurrence in one operator
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for batch, width in ((1, lines.MIN_WIDTH), (3, 76), (2, 260)):
        line = rng.random((batch, lines.HEIGHT, width, 1), np.float32)
        expected = np.asarray(trained_looking_model(line, training=False))
        actual = session.run(None, {"line": line})[0]
        assert actual.shape == (batch, width // lines.STRIDE, read_training.BLANK + 1)
        np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_a_graph_that_disagrees_with_keras_is_not_written(trained_looking_model, tmp_path):
    import unittest.mock

    wrong = reader_graph(trained_looking_model)
    for weight in wrong.graph.initializer:
        if weight.name == "gru1.r":  # the second GRU's recurrent weights, scrambled
            values = onnx.numpy_helper.to_array(weight)
            weight.CopyFrom(onnx.numpy_helper.from_array(values[:, ::-1].copy(), weight.name))
    path = tmp_path / "reader.onnx"
    with unittest.mock.patch("mnistlab.reader_export.reader_graph", return_value=wrong):
        with pytest.raises(RuntimeError, match="disagrees with Keras"):
            read_training.export(trained_looking_model, path)
    assert list(tmp_path.iterdir()) == []


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    blank = read_training.BLANK
    frames = np.zeros((1, 9, blank + 1))
    for t, symbol in enumerate([blank, 4, 4, blank, 4, 2, 2, blank, blank]):
        frames[0, t, symbol] = 1.0
    assert read_training.greedy(frames) == ["442"]

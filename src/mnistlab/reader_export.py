"""The sequence reader as an ONNX graph built from its Keras weights.

tf2onnx would turn Keras 3's GRUs into ONNX ``Loop``s, which ONNX Runtime runs node by node
at every frame: about 2 ms more per line, most of a small network's time. Here each bidirectional
GRU is ONNX's own ``GRU`` operator (``linear_before_reset`` is Keras's ``reset_after``), each
convolution has its batch normalisation folded in, and the graph keeps a free batch and width.
``read_training.export`` checks it against the Keras model before it is written.
"""

from __future__ import annotations

import numpy as np

OPSET = 17
IR_VERSION = 8  # opset 17's; newer ONNX would stamp a version older runtimes refuse


def reader_graph(model):
    """The ONNX model of ``read_training.build_model``'s network (trained weights in it):
    input ``line`` (N, HEIGHT, W, 1), output ``frames`` (N, W / STRIDE, 11)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers = {type(layer).__name__: [] for layer in model.layers}
    for layer in model.layers:
        layers[type(layer).__name__].append(layer)
    nodes, weights = [], []

    def constant(name: str, value) -> str:
        weights.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attributes) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    x = node("Transpose", ["line"], "nchw", perm=[0, 3, 1, 2])
    convs, norms, pools = layers["Conv2D"], layers["BatchNormalization"], layers["MaxPooling2D"]
    for index, (conv, norm, pool) in enumerate(zip(convs, norms, pools)):
        kernel = conv.get_weights()[0]  # (3, 3, in, out)
        gamma, beta, mean, variance = norm.get_weights()
        scale = gamma / np.sqrt(variance + norm.epsilon)
        folded = (kernel * scale).transpose(3, 2, 0, 1).astype(np.float32)
        bias = (beta - mean * scale).astype(np.float32)
        x = node(
            "Conv",
            [x, constant(f"conv{index}.w", folded), constant(f"conv{index}.b", bias)],
            f"conv{index}",
            pads=[1, 1, 1, 1],
        )
        x = node("Relu", [x], f"relu{index}")
        x = node("MaxPool", [x], f"pool{index}", kernel_shape=list(pool.pool_size),
                 strides=list(pool.strides))  # fmt: skip
    # Keras: (N, rows, T, C) -> (N, T, rows * C), each frame's rows side by side.
    x = node("Transpose", [x], "frames_nt", perm=[0, 3, 2, 1])
    last_two = constant("shape.merge", np.array([0, 0, -1], np.int64))
    x = node("Reshape", [x, last_two], "frames_flat")
    dense, out = layers["Dense"]
    kernel, bias = dense.get_weights()
    x = node("MatMul", [x, constant("dense.w", kernel)], "dense_mm")
    x = node("Add", [x, constant("dense.b", bias)], "dense_add")
    x = node("Relu", [x], "dense")
    x = node("Transpose", [x], "sequence", perm=[1, 0, 2])  # (T, N, features)
    for index, both in enumerate(layers["Bidirectional"]):
        w, r, b = [], [], []
        for gru in (both.forward_layer, both.backward_layer):
            kernel, recurrent, bias = gru.get_weights()  # gates z, r, h in both formats
            w.append(kernel.T)
            r.append(recurrent.T)
            b.append(np.concatenate([bias[0], bias[1]]))
        units = recurrent.shape[0]
        x = node(
            "GRU",
            [
                x,
                constant(f"gru{index}.w", np.stack(w).astype(np.float32)),
                constant(f"gru{index}.r", np.stack(r).astype(np.float32)),
                constant(f"gru{index}.b", np.stack(b).astype(np.float32)),
            ],
            f"gru{index}",
            hidden_size=units,
            direction="bidirectional",
            linear_before_reset=1,
        )  # (T, 2, N, units): forward then backward, as Keras concatenates them
        x = node("Transpose", [x], f"gru{index}.t", perm=[0, 2, 1, 3])
        x = node("Reshape", [x, last_two], f"gru{index}.out")
    x = node("Transpose", [x], "batch_first", perm=[1, 0, 2])
    kernel, bias = out.get_weights()
    x = node("MatMul", [x, constant("out.w", kernel)], "out_mm")
    x = node("Add", [x, constant("out.b", bias)], "logits")
    node("Softmax", [x], "frames", axis=-1)
    height = model.input_shape[1]
    graph = helper.make_graph(
        nodes,
        "reader",
        [helper.make_tensor_value_info("line", TensorProto.FLOAT, ["N", height, "W", 1])],
        [helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["N", "T", out.units])],
        weights,
    )
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model

"""The naive baseline for bench_serve.py: what a typical MNIST demo server does.

One FastAPI route, the Keras model loaded once, and per request: decode, grayscale, resize the
whole image to 28x28 (no MNIST normalisation), then ``model.predict``. Not part of mnistlab.

    .venv/bin/python bench/naive_serve.py [--model RUN_DIR] [--port 0]
"""

from __future__ import annotations

import argparse
import io
import os
import socket

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from PIL import Image  # noqa: E402

from mnistlab.predict import pretrained_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(pretrained_dir()))
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    model = keras.saving.load_model(os.path.join(args.model, "model.keras"), compile=False)
    app = FastAPI()

    @app.post("/api/predict")
    async def predict(request: Request) -> dict:
        image = Image.open(io.BytesIO(await request.body())).convert("L").resize((28, 28))
        pixels = np.asarray(image, dtype=np.float32).reshape(1, 784) / 255.0
        probabilities = model.predict(pixels, verbose=0)[0]
        return {"label": int(probabilities.argmax()), "probabilities": probabilities.tolist()}

    listener = socket.socket()
    listener.bind(("127.0.0.1", args.port))
    print(f"naive serve: http://127.0.0.1:{listener.getsockname()[1]}/", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(
        sockets=[listener]
    )


if __name__ == "__main__":
    main()

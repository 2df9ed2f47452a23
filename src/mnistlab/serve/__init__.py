"""``mnistlab serve``: the draw-a-digit page and a JSON API, as one FastAPI app.

- ``schemas``: response models, error tables and ``ApiError``, the one way a route says no;
- ``uploads``: the body under a size limit, multipart in memory, the image decoded once;
- ``options``: ``ServeOptions``, everything the command was asked for;
- ``app``: ``create_app`` and the routes;
- ``traffic``: the bound on requests in flight, security headers, Prometheus metrics;
- ``host``: the socket, uvicorn and worker processes.
"""

from mnistlab.serve.app import IMAGE_THREADS, INLINE_PIXELS, create_app, to_response, web_dir
from mnistlab.serve.host import ServeError, exposure_warning, listen, run, url_of
from mnistlab.serve.options import DEFAULT_MAX_UPLOAD_MB, ServeOptions
from mnistlab.serve.schemas import ApiError
from mnistlab.serve.uploads import MAX_BATCH_FILES

__all__ = [
    "DEFAULT_MAX_UPLOAD_MB",
    "IMAGE_THREADS",
    "INLINE_PIXELS",
    "MAX_BATCH_FILES",
    "ApiError",
    "ServeError",
    "ServeOptions",
    "create_app",
    "exposure_warning",
    "listen",
    "run",
    "to_response",
    "url_of",
    "web_dir",
]

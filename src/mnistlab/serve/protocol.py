"""The HTTP protocol the server runs: uvicorn's httptools protocol, which here also admits each
image request, or answers it 503, as soon as its headers are parsed (``traffic.Gate``).

Under overload most requests are refusals, and their clients ask again at once. Through the app
each one took a task and a dozen middleware layers; here it is one write. And a request admitted
here is counted in flight before its task runs, so the task need not yield to let the next
request be counted (``traffic.TrafficMiddleware`` does, for requests it admits itself): an
admitted canvas is read in the loop turn after its headers arrive, rather than turns later
behind the refusals of every other client.
"""

from __future__ import annotations

import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from mnistlab.serve.traffic import GATE_STATE, Gate, busy_response


class RefusingHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that admits or refuses image requests itself (see the module)."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app) -> None:
        # A refusal earlier in the same read armed the keep-alive timer: this request is on.
        self._unset_keepalive_if_required()
        gate: Gate | None = self.app_state.get(GATE_STATE)
        if gate is None or gate.admit(cycle.scope):
            super()._start_asgi_task(cycle, app)
            return
        started = time.perf_counter()
        # A client waiting for "100 Continue" may still send the body, or not: the connection
        # cannot be reused either way.
        close = not cycle.keep_alive or cycle.waiting_for_100_continue
        self.transport.write(busy_response(self.server_state.default_headers, close))
        # The body still arriving is skipped, as for any answered request.
        cycle.response_started = cycle.response_complete = True
        cycle.waiting_for_100_continue = False
        if close:
            self.transport.close()
        gate.turned_away(cycle.scope, time.perf_counter() - started)
        self.on_response_complete()

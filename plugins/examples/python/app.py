"""status_filter: a weir plugin in Python.

Delivers only `record.*` events whose `data.status` is one of the configured
statuses, adding an `x-record-status` header; drops the rest with the reason.
Config: `{"statuses": ["approved", ...]}`.

Build from this folder:
    componentize-py -d ../../../wit -w filter componentize app -o status_filter.wasm
"""

import json

from componentize_py_types import Err
from wit_world import WitWorld as Filter
from wit_world.imports.host import Level, log
from wit_world.imports.types import Event, Request, Verdict, Verdict_Deliver, Verdict_Drop


class WitWorld(Filter):
    def handle(self, event: Event, request: Request, config: str) -> Verdict:
        try:
            statuses = json.loads(config).get("statuses")
        except (ValueError, AttributeError) as e:
            # Raising Err(...) is how a Python plugin returns `err(...)`;
            # any other uncaught exception traps.
            raise Err(f"status_filter config is not a JSON object: {e}")
        if not isinstance(statuses, list):
            raise Err("status_filter config needs a statuses list")
        if not event.event_type.startswith("record."):
            return Verdict_Drop(f"{event.event_type} is not a record event")
        data = json.loads(event.data)
        status = data.get("status") if isinstance(data, dict) else None
        if not isinstance(status, str) or status not in statuses:
            return Verdict_Drop(f"status {status} not wanted")
        log(Level.DEBUG, f"{event.id} has status {status}")
        # The returned headers replace the incoming ones: keep the others.
        headers = [(k, v) for (k, v) in request.headers if k.lower() != "x-record-status"]
        headers.append(("x-record-status", status))
        return Verdict_Deliver(Request(body=request.body, headers=headers))

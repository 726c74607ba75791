"""owner_filter: deliver only events of the owners listed in the config.

Config: {"owners": ["org_42", ...]}
Build:  componentize-py -d ../../../wit -w filter componentize app -o owner_filter.wasm
"""
import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import Event, Request, Verdict_Deliver, Verdict_Drop


class WitWorld(wit_world.WitWorld):
    def handle(self, event: Event, request: Request, config: str):
        try:
            wanted = set(json.loads(config)["owners"])
        except (ValueError, KeyError, TypeError) as e:
            raise Err(f"config must be {{\"owners\": [...]}}: {e}")
        if event.owner_id not in wanted:
            return Verdict_Drop(f"owner {event.owner_id} not wanted")
        host.log(host.Level.INFO, f"passing {event.id}")
        return Verdict_Deliver(request)

"""sendgrid_events: a weir source plugin in Python.

SendGrid's Event Webhook POSTs a JSON array of email events. Each element
becomes one weir event: type `email.<event>` (`email.delivered`,
`email.open`, ...), id the element's `sg_event_id` (so a redelivered batch is
recognised as duplicates), `occurred-at` from its Unix `timestamp`, and data
the element as it came. An empty array becomes no event.
Config: `{"owner_id": "org_42"}` (optional): the owner id every event gets.

Build from this folder:
    componentize-py -d ../../../wit -w source componentize source_sendgrid -o sendgrid_events.wasm
"""

import json
import re
from datetime import datetime, timezone

from componentize_py_types import Err
from wit_world import WitWorld as Source
from wit_world.imports.host import Level, log
from wit_world.imports.inbound import EventDraft, Incoming


class WitWorld(Source):
    def map_request(self, request: Incoming, config: str) -> list[EventDraft]:
        try:
            owner_id = json.loads(config).get("owner_id")
        except (ValueError, AttributeError) as e:
            raise Err(f"sendgrid_events config is not a JSON object: {e}")
        try:
            batch = json.loads(request.body)
        except ValueError as e:
            # Raising Err(...) is `err(...)`; any other exception traps.
            raise Err(f"the body is not JSON: {e}")
        if not isinstance(batch, list):
            raise Err("expected a JSON array of SendGrid events")
        events = [to_event(i, item, owner_id) for i, item in enumerate(batch)]
        log(Level.DEBUG, f"{len(events)} events from one batch")
        return events


def to_event(i: int, item: object, owner_id: str | None) -> EventDraft:
    if not isinstance(item, dict):
        raise Err(f"element {i} is not an object")
    kind = item.get("event")
    if not isinstance(kind, str) or not re.fullmatch(r"[a-z0-9_]+", kind):
        raise Err(f"element {i} has no usable event name: {kind!r}")
    event_id = item.get("sg_event_id")
    timestamp = item.get("timestamp")
    occurred_at = None
    if isinstance(timestamp, int):
        occurred_at = datetime.fromtimestamp(timestamp, timezone.utc).isoformat()
    return EventDraft(
        id=event_id if isinstance(event_id, str) else None,
        event_type=f"email.{kind}",
        owner_id=owner_id,
        data=json.dumps(item),
        occurred_at=occurred_at,
    )

// status_filter: a weir plugin in JavaScript.
//
// Delivers only `record.*` events whose `data.status` is one of the
// configured statuses, adding an `x-record-status` header; drops the rest
// with the reason. Config: `{"statuses": ["approved", ...]}`.
//
// Build from this folder: npm install && npm run build

import { log } from 'weir:plugin/host@0.1.0';

// The world's `handle` export. Records arrive as objects with camelCase
// fields, variants as `{ tag, val }`. Returning a value is `ok(value)`;
// throwing a string is `err(string)`; throwing an Error traps.
export function handle(event, request, config) {
  let statuses;
  try {
    statuses = JSON.parse(config).statuses;
  } catch (e) {
    throw `status_filter config is not JSON: ${e.message}`;
  }
  if (!Array.isArray(statuses)) {
    throw 'status_filter config needs a statuses list';
  }
  if (!event.eventType.startsWith('record.')) {
    return { tag: 'drop', val: `${event.eventType} is not a record event` };
  }
  const status = JSON.parse(event.data)?.status;
  if (typeof status !== 'string' || !statuses.includes(status)) {
    return { tag: 'drop', val: `status ${status} not wanted` };
  }
  log('debug', `${event.id} has status ${status}`);
  // The returned headers replace the incoming ones: keep the others.
  const headers = request.headers.filter(([name]) => name.toLowerCase() !== 'x-record-status');
  headers.push(['x-record-status', status]);
  return { tag: 'deliver', val: { body: request.body, headers } };
}

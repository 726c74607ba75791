// type_prefix: deliver only events whose type starts with config.prefix,
// tagging them. Config: {"prefix": "record."}
// Build: npx componentize-js plugin.js --wit wit --world-name filter -o type_prefix.wasm
import { log } from "weir:plugin/host@0.1.0";

export function handle(event, request, config) {
  const { prefix } = JSON.parse(config);
  if (typeof prefix !== "string") {
    // A thrown string becomes the plugin's `err`.
    throw 'config must be {"prefix": "..."}';
  }
  if (!event.eventType.startsWith(prefix)) {
    return { tag: "drop", val: `${event.eventType} does not start with ${prefix}` };
  }
  log("info", `passing ${event.id}`);
  request.headers.push(["x-checked-by", "js"]);
  return { tag: "deliver", val: request };
}

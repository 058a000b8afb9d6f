// name: projection_progress
// purpose: how far the graph holds a topic, per partition, over every projection group: the highest offset projected, the newest event time projected, and the detail setting of the group furthest on (null: a projector from before the setting was recorded)
// params: topic: string
// returns: partition: integer, offset: integer, event_ms: integer|null, detail: string|null
MATCH (p:ProjectionCursor {topic: $topic})
WITH p ORDER BY p.offset DESC
RETURN p.partition AS partition, max(p.offset) AS offset, max(p.event_ms) AS event_ms,
       head(collect(p.detail)) AS detail

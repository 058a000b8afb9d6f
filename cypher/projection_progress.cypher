// name: projection_progress
// purpose: how far the graph holds a topic, per partition, over every projection group: the highest offset projected and the newest event time projected
// params: topic: string
// returns: partition: integer, offset: integer, event_ms: integer|null
MATCH (p:ProjectionCursor {topic: $topic})
RETURN p.partition AS partition, max(p.offset) AS offset, max(p.event_ms) AS event_ms

// name: project_cursors_save
// purpose: remember the highest projected offset, the newest projected event time and the detail setting written with them (FRAUDGRAPH_GRAPH_DETAIL: all or flagged) per consumer group, topic and partition (written in the batch's transaction, which holds their lock: project_cursors_lock); readers of the graph learn from them how far it is complete (projection_progress)
// params: cursors: list<map{id: string, topic: string, partition: integer, offset: integer, event_ms: integer|null, detail: string}>
// returns: nothing
UNWIND $cursors AS c
MERGE (p:ProjectionCursor {id: c.id})
SET p.topic = c.topic, p.partition = c.partition, p.detail = c.detail,
    p.offset = CASE WHEN p.offset IS NULL OR c.offset > p.offset THEN c.offset ELSE p.offset END,
    p.event_ms = CASE WHEN p.event_ms IS NULL OR c.event_ms > p.event_ms THEN c.event_ms ELSE p.event_ms END

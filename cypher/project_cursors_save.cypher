// name: project_cursors_save
// purpose: remember the highest projected offset per consumer group, topic and partition (written in the batch's transaction)
// params: cursors: list<map{id: string, offset: integer}>
// returns: nothing
UNWIND $cursors AS c
MERGE (p:ProjectionCursor {id: c.id})
SET p.offset = CASE WHEN p.offset IS NULL OR c.offset > p.offset THEN c.offset ELSE p.offset END

// name: project_cursors_load
// purpose: the projected offsets of one consumer group and topic
// params: prefix: string (group + ":" + topic + ":")
// returns: id: string, offset: integer
MATCH (p:ProjectionCursor)
WHERE p.id STARTS WITH $prefix
RETURN p.id AS id, p.offset AS offset

// name: project_cursors_lock
// purpose: at the start of a projection batch's write transaction, lock the projection cursors of the batch's partitions (every group's, and this group's own, created if new) and read the highest offset any group has projected from each: the batch drops what is at or below it, so a batch redelivered to another projector after a rebalance or a crash, or a second group re-reading the topic, adds nothing twice. The lock (taken by setting a property, held until the transaction ends though the property goes again at once) makes a second writer of the same partition wait for this transaction and then read what it wrote.
// params: cursors: list<map{id: string, topic: string, partition: integer}>
// returns: topic: string, partition: integer, offset: integer
UNWIND $cursors AS c
MERGE (own:ProjectionCursor {id: c.id})
ON CREATE SET own.topic = c.topic, own.partition = c.partition, own.offset = -1
WITH c
MATCH (p:ProjectionCursor {topic: c.topic, partition: c.partition})
SET p._lock = true
REMOVE p._lock
WITH c, max(p.offset) AS offset
RETURN c.topic AS topic, c.partition AS partition, offset

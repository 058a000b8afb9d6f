// name: prune_transactions
// purpose: delete up to $limit transaction detail nodes older than the cut-off (aggregates on relationships stay)
// params: cutoff_ms: integer, limit: integer
// returns: deleted: integer
MATCH (t:Transaction)
WHERE t.event_ms < $cutoff_ms
WITH t LIMIT $limit
DETACH DELETE t
RETURN count(*) AS deleted

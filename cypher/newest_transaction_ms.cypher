// name: newest_transaction_ms
// purpose: event time of the newest transaction detail in the graph (the retention clock: event time, not wall time)
// params: none
// returns: newest_ms: integer or null
MATCH (t:Transaction)
WHERE t.event_ms IS NOT NULL
RETURN t.event_ms AS newest_ms
ORDER BY t.event_ms DESC
LIMIT 1

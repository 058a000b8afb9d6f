// name: clear_nodes
// purpose: delete up to $limit nodes (after clear_relationships; benchmarks, tests)
// params: limit: integer
// returns: deleted: integer
MATCH (n)
WITH n LIMIT $limit
DETACH DELETE n
RETURN count(*) AS deleted

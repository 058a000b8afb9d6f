// name: clear_relationships
// purpose: delete up to $limit relationships (emptying the graph in bounded transactions: benchmarks, tests)
// params: limit: integer
// returns: deleted: integer
MATCH ()-[r]->()
WITH r LIMIT $limit
DELETE r
RETURN count(*) AS deleted

// name: project_known_transactions
// purpose: which of these transaction ids are already in the graph (the projection's idempotency check)
// params: ids: list<string>
// returns: id: string
UNWIND $ids AS id
MATCH (t:Transaction {id: id})
RETURN t.id AS id

// name: features_sites
// purpose: graph features of a batch of sites: distinct cards and transactions seen
// params: ids: list<string>
// returns: id: string, cards: integer, transactions: integer
UNWIND $ids AS id
MATCH (s:Site {id: id})
RETURN id,
       COUNT { (:Card)-[:PAID_AT]->(s) } AS cards,
       reduce(n = 0, r IN [(:Card)-[p:PAID_AT]->(s) | p.count] | n + r) AS transactions

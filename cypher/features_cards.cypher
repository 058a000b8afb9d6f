// name: features_cards
// purpose: graph features of a batch of cards: holders, devices, sites and activity
// params: ids: list<string>
// returns: id: string, users: integer, devices: integer, sites: integer, transactions: integer, first_seen_ms: integer
UNWIND $ids AS id
MATCH (c:Card {id: id})
RETURN id,
       COUNT { (:User)-[:HOLDS]->(c) } AS users,
       COUNT { (c)-[:USED_ON]->(:Device) } AS devices,
       COUNT { (c)-[:PAID_AT]->(:Site) } AS sites,
       reduce(n = 0, r IN [(c)-[p:PAID_AT]->(:Site) | p.count] | n + r) AS transactions,
       reduce(m = null, r IN [(c)-[p:PAID_AT]->(:Site) | p.first_seen_ms] |
              CASE WHEN m IS NULL OR r < m THEN r ELSE m END) AS first_seen_ms

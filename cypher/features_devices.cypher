// name: features_devices
// purpose: graph features of a batch of devices: how many cards and users used each (shared-device signal)
// params: ids: list<string>
// returns: id: string, cards: integer, users: integer, transactions: integer
UNWIND $ids AS id
MATCH (d:Device {id: id})
RETURN id,
       COUNT { (:Card)-[:USED_ON]->(d) } AS cards,
       COUNT { (:User)-[:USES]->(d) } AS users,
       reduce(n = 0, r IN [(:Card)-[u:USED_ON]->(d) | u.count] | n + r) AS transactions

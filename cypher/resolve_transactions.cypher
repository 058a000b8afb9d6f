// name: resolve_transactions
// purpose: the card, user, site, device and event time of transactions in the graph (a fraud label applied before, replayed after a restart or by another consumer group, still tells the learned model's features where the fraud was)
// params: ids: list<string>
// returns: transaction_id: string, card_id: string|null, user_id: string|null, site_id: string|null, device_id: string|null, event_ms: integer|null
UNWIND $ids AS id
MATCH (t:Transaction {id: id})
OPTIONAL MATCH (t)<-[:MADE]-(c:Card)
OPTIONAL MATCH (t)-[:AT]->(s:Site)
OPTIONAL MATCH (t)-[:ON]->(d:Device)
RETURN t.id AS transaction_id, c.id AS card_id, t.user_id AS user_id, s.id AS site_id,
       d.id AS device_id, t.event_ms AS event_ms

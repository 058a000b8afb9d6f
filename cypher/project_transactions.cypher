// name: project_transactions
// purpose: create the transaction detail nodes of a batch (ids already filtered as new), linked to card, site and device
// params: txs: list<map{id, card_id, site_id, device_id, event_ms, amount_minor, currency, country, ip_address, merchant_category, card_present}>
// returns: nothing
UNWIND $txs AS t
MATCH (c:Card {id: t.card_id})
MATCH (s:Site {id: t.site_id})
CREATE (c)-[:MADE]->(x:Transaction {
  id: t.id, event_ms: t.event_ms, amount_minor: t.amount_minor, currency: t.currency,
  country: t.country, ip_address: t.ip_address, merchant_category: t.merchant_category,
  card_present: t.card_present, user_id: t.user_id
})-[:AT]->(s)
WITH x, t
WHERE t.device_id IS NOT NULL
MATCH (d:Device {id: t.device_id})
CREATE (x)-[:ON]->(d)

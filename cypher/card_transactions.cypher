// name: card_transactions
// purpose: a card's most recent transactions (within the retention window) with amount, site, device, the detector's decision on review/block, and confirmed labels
// params: card_id: string, limit: integer = 20
// returns: transaction_id: string, event_ms: integer, amount_minor: integer, currency: string, site: string, device: string|null, country: string, decision: string|null, score: float|null, label: string|null
MATCH (:Card {id: $card_id})-[:MADE]->(t:Transaction)-[:AT]->(s:Site)
OPTIONAL MATCH (t)-[:ON]->(d:Device)
RETURN t.id AS transaction_id, t.event_ms AS event_ms, t.amount_minor AS amount_minor,
       t.currency AS currency, s.id AS site, d.id AS device, t.country AS country,
       t.decision AS decision, t.score AS score, t.label AS label
ORDER BY event_ms DESC, transaction_id
LIMIT $limit

// name: explain_decision
// purpose: the evidence behind one transaction's decision: the transaction, its card, user, site and device, how shared the device and the card are, the holder's ring, and confirmed fraud or blocklisted entities within 2 hops
// params: transaction_id: string
// returns: transaction_id: string, decision: string|null, score: float|null, reasons: list<string>|null, card: string, user: string|null, site: string, device: string|null, device_cards: integer, card_holders: integer, ring_id: string|null, flagged_nearby: list<string>
MATCH (c:Card)-[:MADE]->(t:Transaction {id: $transaction_id})-[:AT]->(s:Site)
OPTIONAL MATCH (t)-[:ON]->(d:Device)
OPTIONAL MATCH (u:User {id: t.user_id})
OPTIONAL CALL (c) {
  MATCH (c)-[:HOLDS|USED_ON|USES|FROM_IP*1..2]-(x)
  WHERE x <> c AND (x.fraud_confirmed_ms IS NOT NULL OR x.blocked = true)
  WITH DISTINCT x ORDER BY x.id LIMIT 20
  RETURN collect(head([l IN labels(x) WHERE NOT l IN ['Blocked', 'ConfirmedFraud', 'HighRisk']]) + ' ' + x.id) AS flagged_nearby
}
RETURN t.id AS transaction_id, t.decision AS decision, t.score AS score, t.reasons AS reasons,
       c.id AS card, u.id AS user, s.id AS site, d.id AS device,
       CASE WHEN d IS NULL THEN 0 ELSE COUNT { (d)<-[:USED_ON]-(:Card) } END AS device_cards,
       COUNT { (c)<-[:HOLDS]-(:User) } AS card_holders, u.ring_id AS ring_id,
       coalesce(flagged_nearby, []) AS flagged_nearby

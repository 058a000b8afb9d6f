// name: detect_cards
// purpose: per-batch card checks: how many users hold the card, the largest fraud ring among its holders, GNN risk, and whether a confirmed-fraud or blocklisted entity lies within 2 hops (over cards, users, devices and IPs; sites are left out: every card meets every popular site); returns only the cards with something to report
// params: ids: list<string>, min_risk: float = 0.5
// returns: id: string, holders: integer, ring_id: string|null, ring_size: integer, risk_score: float|null, near_fraud: string|null
UNWIND $ids AS id
MATCH (c:Card {id: id})
OPTIONAL MATCH (u:User)-[:HOLDS]->(c)
WITH c, collect(u) AS holders
WITH c, holders, [u IN holders WHERE u.ring_id IS NOT NULL | u] AS members
OPTIONAL CALL (c) {
  MATCH (c)-[:HOLDS|USED_ON|USES|FROM_IP*1..2]-(x)
  WHERE x <> c AND (x.fraud_confirmed_ms IS NOT NULL OR x.blocked = true)
  RETURN head([l IN labels(x) WHERE NOT l IN ['Blocked', 'ConfirmedFraud', 'HighRisk']]) + ' ' + x.id AS near
  LIMIT 1
}
WITH c, holders, members, near
WHERE size(holders) > 1 OR size(members) > 0 OR near IS NOT NULL OR c.risk_score >= $min_risk
RETURN c.id AS id, size(holders) AS holders,
       CASE WHEN size(members) = 0 THEN null ELSE members[0].ring_id END AS ring_id,
       reduce(m = 0, u IN members | CASE WHEN u.ring_size > m THEN u.ring_size ELSE m END) AS ring_size,
       c.risk_score AS risk_score, near AS near_fraud
